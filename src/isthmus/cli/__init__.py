"""The command line: a thin shell over the public API.

Every user mistake becomes one ``error: ...`` line on stderr and exit status 1 (2 for usage errors).
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from isthmus import __version__
from isthmus.cli import arrays, coding, measure, models
from isthmus.cli._common import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="isthmus")
@click.option(
    "--na-values",
    multiple=True,
    metavar="TEXT",
    help="Read CSV cells holding TEXT (spaces aside) as missing, besides empty cells, NA, N/A, NaN and null; "
    "give it before the command, once per text: isthmus --na-values '?' train data.csv -o m.safetensors",
)
def cli(na_values: tuple[str, ...]) -> None:
    """isthmus: train autoencoders and use them to encode, decode and evaluate data."""


COMMANDS: tuple[click.Command, ...] = (
    models.train,
    arrays.encode,
    arrays.decode,
    arrays.reconstruct,
    arrays.denoise,
    arrays.impute,
    arrays.sample,
    arrays.interpolate,
    measure.evaluate,
    measure.score_command,
    measure.report,
    coding.compress,
    coding.decompress,
    coding.rd,
    models.export_encoder,
    models.export_onnx,
    models.info,
)
for _command in COMMANDS:  # added here, explicitly: importing a module registers nothing
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        # Without standalone mode click *returns* the status of a ``ctx.exit(n)`` (as from Group)
        # instead of raising Exit; on success it returns the command's own value (None).
        args = list(argv) if argv is not None else None
        status = cli.main(args=args, prog_name="isthmus", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    return status if isinstance(status, int) else 0


__all__ = ["cli", "main"]
