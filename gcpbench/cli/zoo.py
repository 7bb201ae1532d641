"""`gcpbench zoo` and `gcpbench convert`."""
from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from gcpbench.cli import app
from gcpbench.cli.choices import MODEL, OUTPUT, SOURCES, choice, examples, json_option


class ZooFormat(str, Enum):
    table = "table"
    csv = "csv"


ZOO_EPILOG = examples(
    "gcpbench zoo",
    "gcpbench zoo --source timm --filter '*convnext*' --resolution 256",
    "gcpbench zoo -m resnet50_gcp -m mobilenetv2_gcp --format csv",
)


@app.command(epilog=ZOO_EPILOG)
def zoo(
    source: str = choice("zoo", "--source", SOURCES, "model source", "whose models to list", MODEL),
    pattern: str = typer.Option(None, "--filter", help="shell pattern on the names, e.g. '*convnext*'", rich_help_panel=MODEL),
    only: list[str] = typer.Option(None, "--model", "-m", help="list only these models (repeatable)", rich_help_panel=MODEL),
    resolution: int = typer.Option(224, help="input size for the FLOP count", rich_help_panel=MODEL),
    fmt: ZooFormat = typer.Option(ZooFormat.table, "--format", help="table (rich) or csv", rich_help_panel=OUTPUT),
    as_json: bool = json_option("the rows"),
) -> None:
    """List the model zoo (or timm's / torchvision's models): name, parameters, GFLOPs (multiply-adds), GCP dimension."""
    from rich.table import Table

    from gcpbench.cli.ui import stdout_console
    from gcpbench.models.complexity import complexity
    from gcpbench.models.listing import zoo_names

    names = zoo_names(source, pattern, only)
    rows = [complexity(name, resolution) for name in names]
    if as_json:
        import json

        typer.echo(json.dumps([{**r, "gcp_dim": r["gcp_dim"] if r["gcp_dim"] != "-" else None,
                                "gcp_norm": r["gcp_norm"] if r["gcp_norm"] != "-" else None} for r in rows], indent=2))
        return
    if fmt is ZooFormat.csv:
        typer.echo("model,params,gflops,gcp_dim,gcp_norm")
        for r in rows:
            typer.echo(f"{r['model']},{r['params']},{r['gflops']:.3f},{r['gcp_dim'] if r['gcp_dim'] != '-' else ''},"
                       f"{r['gcp_norm'] if r['gcp_norm'] != '-' else ''}")
        return
    table = Table(title=f"{'gcpbench model zoo' if source == 'zoo' else source + ' models'} ({resolution}x{resolution}, 1000 classes)")
    for column, justify in (("model", "left"), ("params", "right"), ("GFLOPs", "right"), ("GCP dim", "right"),
                            ("GCP norm", "left")):
        table.add_column(column, justify=justify)
    for r in rows:
        table.add_row(str(r["model"]), f"{r['params']:,}", f"{r['gflops']:.2f}", str(r["gcp_dim"]), str(r["gcp_norm"]))
    stdout_console().print(table)


CONVERT_EPILOG = examples(
    "gcpbench convert iSQRT-COV-ResNet50.pth.tar --model resnet50_gcp --out r50_gcp.pt",
    "gcpbench convert resnet18-f37072fd.pth --model resnet18_gap --out r18_gap.pt   (a torchvision file)",
)


@app.command(epilog=CONVERT_EPILOG)
def convert(
    src: Path = typer.Argument(..., help="original iSQRT-COV .pth.tar, torchvision or gcpbench checkpoint", show_default=False),
    model: str = typer.Option(..., "--model", help="zoo model name, e.g. resnet50_gcp", rich_help_panel=MODEL),
    out: Path = typer.Option(..., "--out", help="where to write the gcpbench checkpoint", rich_help_panel=OUTPUT),
) -> None:
    """Convert a checkpoint into the gcpbench form (strict: every tensor must fit)."""
    from gcpbench.paths import require_writable_file

    require_writable_file(out, "choose another --out", "converted checkpoint")
    from gcpbench.models import convert as convert_checkpoint
    from gcpbench.models import model_info

    name = model_info(model).name
    path = convert_checkpoint(src, name, out)
    typer.echo(f"wrote {path} ({name})")
