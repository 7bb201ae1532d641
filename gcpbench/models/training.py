"""Which model and schedule family a ``gcpbench train`` command means."""
from __future__ import annotations

from gcpbench.errors import GcpbenchError
from gcpbench.models.registry import FAMILIES

DEFAULT_FAMILY = "resnet"


def train_model(arch: str, head: str | None, gcp_dim: int | None, last_stride_one: bool | None,
                schedule_family: str | None, gcp_norm: str | None = None) -> tuple[str, str]:
    """(model name, schedule family): zoo models keep their own family (the paper's schedules);
    timm / torchvision models use ``schedule_family`` (default: the ResNet formulas)."""
    from gcpbench.models.external import is_external, parse_name
    from gcpbench.models.registry import model_name

    if is_external(arch):
        name = parse_name(arch, head, gcp_dim, last_stride_one, gcp_norm=gcp_norm).name
    elif last_stride_one is not None:
        raise GcpbenchError("--last-stage-stride-1 is for timm/torchvision ResNets; the zoo's GCP ResNets already use it")
    else:
        name = model_name(arch, head, gcp_dim, gcp_norm)
    return name, family_for(name, schedule_family)


def family_for(name: str, schedule_family: str | None) -> str:
    """Whose schedules (and landscape step sizes) model ``name`` uses: a zoo model its own family
    (``--schedule-family`` must agree), a timm / torchvision model ``schedule_family`` (default:
    the ResNet formulas)."""
    from gcpbench.models.external import is_external
    from gcpbench.models.registry import model_info

    family = schedule_family.lower() if schedule_family else None
    if family is not None and family not in FAMILIES:
        raise GcpbenchError(f"--schedule-family must be one of {', '.join(FAMILIES)}, got '{schedule_family}'")
    if is_external(name):
        return family or DEFAULT_FAMILY
    own = model_info(name).family
    if family is not None and family != own:
        raise GcpbenchError(f"{name} is a {own} model (the {own} schedules and step sizes); --schedule-family "
                            f"{family} contradicts it: drop --schedule-family (it is for timm/torchvision models)")
    return own
