"""Every `sam logs` and `sam sync` command the Markdown shows uses flags the installed SAM CLI
has (run by scripts/test.sh, which installs it into .venv): those need an AWS account, so this is
how a doc about them can't drift from the tool. `hookrelay-dev` commands are checked in
devtools/src/dev_cli.rs."""

import pathlib
import re
import subprocess
import unittest

from test_docs_links import ROOT, markdown_files

SAM = ROOT / ".venv" / "bin" / "sam"
COMMAND = re.compile(r"`(sam (logs|sync) [^`]*)`", re.S)


def documented():
    for path in markdown_files():
        for match in COMMAND.finditer(path.read_text()):
            yield path.relative_to(ROOT), match.group(2), " ".join(match.group(1).split())


@unittest.skipUnless(SAM.exists(), "the SAM CLI is installed into .venv by scripts/test.sh")
class SamCommands(unittest.TestCase):
    def test_every_documented_flag_exists(self):
        commands = list(documented())
        self.assertGreaterEqual(len(commands), 2, commands)
        helps = {}
        for path, subcommand, command in commands:
            if subcommand not in helps:
                helps[subcommand] = subprocess.run([str(SAM), subcommand, "--help"], capture_output=True,
                                                   text=True, timeout=120, check=True).stdout
            for flag in re.findall(r"(?<!\S)(--[a-z][a-z-]*)", command):
                with self.subTest(path=str(path), command=command, flag=flag):
                    self.assertRegex(helps[subcommand], rf"(?<![\w-]){re.escape(flag)}(?![\w-])")


if __name__ == "__main__":
    unittest.main()
