"""Exceptions the command line maps to exit codes."""


def one_line(text: str) -> str:
    """`text` with control characters and lone surrogates (undecodable file-name bytes) escaped,
    so that a message is one printable line whatever the input held."""
    out = []
    for ch in text:
        o = ord(ch)
        if o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:  # os.fsdecode's surrogateescape of byte o - 0xDC00
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


class InputError(ValueError):
    """Bad input from the user (scenario, arguments, trace file): one line naming the file,
    the location and what was expected. The command line prints it and exits with code 2."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(str(message)))


class EnvironmentProblem(RuntimeError):
    """The machine cannot do what was asked (not root, no tracefs, build missing): exit code 3."""
