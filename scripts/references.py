"""Write chapters/references.md from references.bib: a plain list, one anchor per entry.

    python scripts/references.py [--check]

The chapters cite as text, "(Selvaraju et al., 2017)", linked to
https://camcore.github.io/camcore-book/chapters/references.html#selvaraju2017gradcam: the anchor
is the BibTeX key, so a citation reads and links the same in the web book, Colab and JupyterLab.
``--check`` exits 1 if chapters/references.md is not what references.bib gives (a test runs it).
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "chapters" / "references.md"


def entries(text: str) -> list[dict]:
    """The entries of a simple BibTeX file: ``{"key": ..., "title": ..., ...}``."""
    found = []
    for key, body in re.findall(r"@\w+\{([^,]+),(.*?)\n\}", text, re.S):
        fields = {k.lower(): v.strip() for k, v in
                  re.findall(r"(\w+)\s*=\s*\{((?:[^{}]|\{[^{}]*\})*)\}", body)}
        found.append({"key": key.strip(), **fields})
    return found


def authors(field: str) -> str:
    names = [" ".join(reversed([p.strip() for p in a.split(",", 1)]))
             for a in field.split(" and ")]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def short_cite(entry: dict) -> str:
    """"Selvaraju et al., 2017": how the chapters cite an entry."""
    surnames = [a.split(",")[0].strip() for a in entry["author"].split(" and ")]
    who = (surnames[0] if len(surnames) == 1 else f"{surnames[0]} and {surnames[1]}"
           if len(surnames) == 2 else f"{surnames[0]} et al.")
    return f"{who}, {entry['year']}"


def render(bib: str) -> str:
    lines = ["# References", "",
             "The chapters cite these works as (author, year), linked to the entries below.", ""]
    for e in sorted(entries(bib), key=lambda e: (e["author"].split(",")[0], e["year"])):
        venue = e.get("booktitle") or e.get("journal", "")
        where = ", ".join(x for x in (
            f"*{venue}*" if venue else "",
            f"vol. {e['volume']}" if "volume" in e else "",
            f"pp. {e['pages'].replace('--', '–')}" if "pages" in e else "") if x)
        title = e["title"].replace("{", "").replace("}", "")
        lines += [f'<a id="{e["key"]}"></a>**{short_cite(e)}.** {authors(e["author"])}. '
                  f"{title}. {where}.", ""]
    return "\n".join(lines)


def main(argv):
    text = render((ROOT / "references.bib").read_text())
    if "--check" in argv:
        ok = OUT.read_text() == text
        print("chapters/references.md is in step" if ok else
              "chapters/references.md differs from references.bib: run scripts/references.py")
        return 0 if ok else 1
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
