"""``python -m gcpbench``."""
from gcpbench.cli import main

main()
