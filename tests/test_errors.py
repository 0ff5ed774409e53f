"""bench.core.errors.run_command: every way a command ends is one sentence on stderr and a set exit code."""

import signal

import pytest

from bench.core.errors import DataError, run_command


class Stopped(KeyboardInterrupt):
    signum = signal.SIGTERM


def raising(error):
    def body():
        raise error
    return body


@pytest.mark.parametrize(
    "body, code, stderr",
    [
        (lambda: 0, 0, ""),
        (lambda: 1, 1, ""),
        (raising(DataError("The folder x has no images.")), 2, "error: The folder x has no images.\n"),
        (raising(KeyboardInterrupt()), 130, "error: Stopped by the user.\n"),
        (raising(Stopped()), 143, "error: Stopped by the user.\n"),
        (raising(RuntimeError("worker died")), 7, "error: Unexpected RuntimeError: worker died.\n"),
    ],
)
def test_run_command_ends_with_one_sentence_and_its_exit_code(body, code, stderr, capsys):
    assert run_command(body, interrupted="Stopped by the user.", unexpected_exit_code=7) == code
    captured = capsys.readouterr()
    assert captured.err == stderr and captured.out == ""
