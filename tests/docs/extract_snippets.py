#!/usr/bin/env python3
"""Turn the C++ code blocks of a Markdown file into one translation unit, so that the build compiles
every example the documentation shows.

Each ```cpp (or ```c++) block becomes its own namespace, `snippet_<line>`, in the order of the file.
A `#line` directive before each block makes the compiler's messages name the Markdown file and line.
`#include` lines of a block are moved to the top of the unit. What a block is:

- a fragment (the default): statements, compiled as the body of a function;
- a whole program: a block that defines `int main(`, compiled at global scope (one per page);
- declarations: a block preceded by `<!-- snippet: toplevel -->`, compiled at namespace scope.

HTML comments placed before a block (only blank lines or other snippet comments between them and
the fence) say more; readers of the rendered page do not see them:

    <!-- snippet: toplevel -->            the block declares things (types, functions, namespaces)
    <!-- snippet: skip REASON -->         not compiled; REASON is required and printed
    <!-- snippet: prelude                 C++ placed before this block only (names it uses
    int fn(int);                          without defining them), at namespace scope
    -->
    <!-- snippets: prelude                the same for every block after it in the file
    using namespace std::chrono_literals;
    -->

Anything malformed (an unknown directive, a skip without a reason, a marker followed by no block,
an unclosed block) stops the script with a message naming the file and line.

usage: extract_snippets.py --out FILE.cpp [--header H]... [--name NAME] FILE.md
"""
import argparse
import re
import sys

FENCE_OPEN = re.compile(r"^(\s*)```\s*(cpp|c\+\+|C\+\+)\s*$")
FENCE_ANY = re.compile(r"^(\s*)```")
MARKER = re.compile(r"^\s*<!--\s*(snippets?)\s*:\s*(\w+)\s*(.*?)\s*(-->)?\s*$")
INCLUDE = re.compile(r"^\s*#\s*include\b")
MAIN = re.compile(r"\bint\s+main\s*\(")


class Failure(Exception):
    pass


class Block:
    def __init__(self, line, code, kind, prelude, skip):
        self.line = line  # 1-based line of the first line of code (after the fence)
        self.code = code
        self.kind = kind
        self.prelude = prelude  # list of (line, text)
        self.skip = skip


def read_comment_body(lines, i, where):
    """Lines of a multi-line marker up to its closing '-->'; returns (body, index after it)."""
    body = []
    while i < len(lines):
        text = lines[i]
        if text.strip() == "-->":
            return body, i + 1
        if "-->" in text:
            raise Failure(f"{where}: put the closing '-->' of a prelude on a line of its own")
        body.append((i + 1, text))
        i += 1
    raise Failure(f"{where}: the prelude is never closed with '-->'")


def parse(path, display):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks = []
    file_prelude = []
    pending = None  # markers waiting for their block: dict
    i = 0
    while i < len(lines):
        text = lines[i]
        where = f"{display}:{i + 1}"
        m = MARKER.match(text)
        if m:
            scope, directive, arg, closed = m.group(1), m.group(2), m.group(3), m.group(4)
            if pending is None:
                pending = {"kind": None, "skip": None, "prelude": [], "line": i + 1}
            if scope == "snippets":
                if directive != "prelude" or closed:
                    raise Failure(f"{where}: 'snippets:' (for the whole file) only takes 'prelude' and its code on the lines below")
                body, i = read_comment_body(lines, i + 1, where)
                file_prelude.extend(body)
                if pending["kind"] is None and pending["skip"] is None and not pending["prelude"]:
                    pending = None
                continue
            if directive == "toplevel":
                if arg or not closed:
                    raise Failure(f"{where}: write '<!-- snippet: toplevel -->'")
                pending["kind"] = "toplevel"
                i += 1
                continue
            if directive == "skip":
                if not arg or not closed:
                    raise Failure(f"{where}: a skipped block needs a reason: '<!-- snippet: skip REASON -->'")
                pending["skip"] = arg
                i += 1
                continue
            if directive == "prelude":
                if arg or closed:
                    raise Failure(f"{where}: a prelude's code goes on the lines below '<!-- snippet: prelude', closed by '-->'")
                body, i = read_comment_body(lines, i + 1, where)
                pending["prelude"].extend(body)
                continue
            raise Failure(f"{where}: unknown snippet directive '{directive}' (toplevel, skip, prelude)")
        if "<!--" in text and re.search(r"<!--\s*snippets?\b", text):
            raise Failure(f"{where}: malformed snippet marker: {text.strip()}")
        fence = FENCE_OPEN.match(text)
        if fence:
            indent = len(fence.group(1))
            start = i + 1
            code = []
            i += 1
            while True:
                if i >= len(lines):
                    raise Failure(f"{display}:{start}: this ```cpp block is never closed")
                closing = FENCE_ANY.match(lines[i])
                if closing and lines[i].strip() == "```":
                    break
                line = lines[i]
                if line[:indent].strip() == "":
                    line = line[indent:]
                code.append(line)
                i += 1
            p = pending or {"kind": None, "skip": None, "prelude": []}
            kind = p["kind"] or ("program" if MAIN.search("\n".join(code)) else "fragment")
            blocks.append(Block(start + 1, code, kind, p["prelude"], p["skip"]))
            pending = None
            i += 1
            continue
        if pending is not None and text.strip() != "":
            raise Failure(f"{display}:{pending['line']}: a snippet marker must be followed by a ```cpp block")
        if FENCE_ANY.match(text):
            # another language's block: skip over it, so that its content is never read as markers
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
        i += 1
    if pending is not None:
        raise Failure(f"{display}:{pending['line']}: a snippet marker must be followed by a ```cpp block")
    return blocks, file_prelude


def emit(blocks, file_prelude, display, headers):
    # a file without a block to compile gives an empty unit, which costs nothing to build
    includes = [f"#include <{h}>" for h in headers] if any(b.skip is None for b in blocks) else []
    body = []

    def place(numbered, out):
        # numbered: list of (line, text); #include lines go to the top, a blank stays in their place
        last = None
        for line, text in numbered:
            if last is None or line != last + 1:
                out.append(f'#line {line} "{display}"')
            last = line
            if INCLUDE.match(text):
                if text.strip() not in includes:
                    includes.append(text.strip())
                out.append("")
            else:
                out.append(text)

    compiled = 0
    for b in blocks:
        if b.skip is not None:
            print(f"{display}:{b.line}: skipped: {b.skip}")
            continue
        compiled += 1
        numbered = list(enumerate(b.code, start=b.line))
        if b.kind == "program":
            # at global scope, where main is the program's entry point (and may omit its return)
            if any(o.kind == "program" and o.skip is None and o.line < b.line for o in blocks):
                raise Failure(f"{display}:{b.line}: a second whole program on one page: make it a fragment, or skip it")
            body.append(f"// the whole program of {display}:{b.line}")
            place(file_prelude, body)
            place(b.prelude, body)
            place(numbered, body)
            body.append("")
            continue
        body.append(f"namespace snippet_{b.line} {{")
        place(file_prelude, body)
        place(b.prelude, body)
        if b.kind == "fragment":
            body.append("[[maybe_unused]] void fragment() {")
            place(numbered, body)
            body.append("}")
        else:
            place(numbered, body)
        body.append(f"}}  // namespace snippet_{b.line}")
        body.append("")
    head = [f"// Generated from {display} by tests/docs/extract_snippets.py: edit the Markdown, not this file.",
            f"// {compiled} block(s) compiled, {len(blocks) - compiled} skipped."]
    return "\n".join(head + includes + [""] + body) + "\n", compiled


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("markdown")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", help="the file's name in messages (default: as given)")
    ap.add_argument("--header", action="append", default=None,
                    help="header included first (default: mproc/mproc.hpp); repeatable")
    args = ap.parse_args()
    display = args.name or args.markdown
    headers = args.header if args.header is not None else ["mproc/mproc.hpp"]
    try:
        blocks, file_prelude = parse(args.markdown, display)
        text, compiled = emit(blocks, file_prelude, display, headers)
    except Failure as e:
        print(f"extract_snippets: {e}", file=sys.stderr)
        return 1
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{display}: {compiled} C++ block(s) to compile, {len(blocks) - compiled} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
