"""Every relative link in the project's Markdown resolves (run by scripts/test.sh with unittest):
the file exists and, when the link names a heading (`#...`), the heading is there, slugged as
GitHub slugs it (lowercase; punctuation but hyphens and spaces dropped; spaces to hyphens; a
repeat gets -1, -2, ...)."""

import pathlib
import re
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SKIP = {".venv", ".venv-checkov", ".venv-bench", ".venv-uv", "target", ".git", ".aws-sam",
        "node_modules", ".local", "fuzz"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.M)


def markdown_files():
    for path in ROOT.rglob("*.md"):
        if not SKIP.intersection(path.relative_to(ROOT).parts):
            yield path


def slugs(path: pathlib.Path) -> set:
    seen, found = {}, set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip()
        title = re.sub(r"`|\*|_(?=\W)|(?<=\W)_", "", title)
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: pathlib.Path):
    text = path.read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
            yield target


class Links(unittest.TestCase):
    def test_every_relative_link_resolves(self):
        broken = []
        for path in markdown_files():
            for target in links(path):
                file, _, anchor = target.partition("#")
                resolved = (path.parent / file).resolve() if file else path
                if not resolved.exists():
                    broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
                elif anchor and resolved.suffix == ".md" and anchor not in slugs(resolved):
                    broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
        self.assertEqual(broken, [], "\n".join(broken))

    def test_the_slugger_follows_github(self):
        page = ROOT / "docs" / "security.md"
        self.assertIn("who-may-do-what", slugs(page))
        self.assertIn("the-optional-front", slugs(page))


if __name__ == "__main__":
    unittest.main()
