"""What the user sees: library log lines through the CLI's handler; global --quiet / --verbose."""
import logging

from gcpbench import progress

LIBRARY = logging.getLogger("gcpbench.some_module")


def test_library_lines_as_the_cli_shows_them(run_cli, capsys):
    assert run_cli("zoo", "-m", "resnet18_gap")[0] == 0
    assert logging.getLogger("gcpbench").level == logging.INFO and progress.active()
    LIBRARY.info("an info line")
    LIBRARY.warning("a warning")
    LIBRARY.debug("a debug line")
    assert capsys.readouterr().err.splitlines() == ["an info line", "warning: a warning"]


def test_global_quiet_keeps_warnings_and_drops_info_and_bars(run_cli, capsys):
    code, out, _ = run_cli("--quiet", "zoo", "-m", "resnet18_gap")
    assert code == 0 and "resnet18_gap" in out  # results still print
    assert not progress.active()
    LIBRARY.info("an info line")
    LIBRARY.warning("a warning")
    assert capsys.readouterr().err.splitlines() == ["warning: a warning"]


def test_global_verbose_adds_debug_lines(run_cli, capsys):
    assert run_cli("--verbose", "zoo", "-m", "resnet18_gap")[0] == 0
    LIBRARY.debug("a debug line")
    assert capsys.readouterr().err.splitlines() == ["a debug line"]


def test_quiet_and_verbose_together_is_one_error_line(run_cli):
    code, _, err = run_cli("--quiet", "--verbose", "zoo")
    assert code == 2 and err.strip() == "error: --quiet and --verbose contradict each other: pass one"
