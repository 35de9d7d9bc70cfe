"""A small reader for the ``.nk`` text dvp_nuke writes (TCL words, braces, quotes, node stack, curves)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Brace:
    """A ``{...}`` word, its inner text unparsed."""

    text: str


def words(text: str) -> list[list[str | Brace]]:
    """Split TCL-ish text into commands (lists of words); newlines and ``;`` end commands outside braces."""
    cmds: list[list[str | Brace]] = []
    cur: list[str | Brace] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\n;":
            if cur:
                cmds.append(cur)
                cur = []
            i += 1
        elif c.isspace():
            i += 1
        elif c == "{":
            depth, j = 1, i + 1
            while depth:
                if j >= n:
                    raise ValueError("unbalanced {")
                if text[j] == "\\":
                    j += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            cur.append(Brace(text[i + 1 : j - 1]))
            i = j
        elif c == '"':
            j, out = i + 1, []
            while text[j] != '"':
                if text[j] == "\\":
                    nxt = text[j + 1]
                    out.append("\n" if nxt == "n" else nxt)
                    j += 2
                else:
                    out.append(text[j])
                    j += 1
            cur.append("".join(out))
            i = j + 1
        elif c == "#" and not cur:
            while i < n and text[i] != "\n":
                i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in ";{":
                j += 1
            cur.append(text[i:j])
            i = j
    if cur:
        cmds.append(cur)
    return cmds


def parse_curve(text: str) -> tuple[list[float], list[float]]:
    """``curve x1001 1 2 x1005 3`` -> frames, values (a key without ``x`` continues the previous spacing)."""
    toks = text.split()
    if not toks or toks[0] != "curve":
        raise ValueError(f"not a curve: {text[:40]!r}")
    frames: list[float] = []
    values: list[float] = []
    pending: float | None = None
    for t in toks[1:]:
        if t in ("K", "L", "S", "R", "C", "k", "l"):
            continue
        if t.startswith("x"):
            pending = float(t[1:])
            continue
        if pending is None:
            if not frames:
                pending = 0.0
            elif len(frames) == 1:
                pending = 2 * frames[0]
            else:
                pending = frames[-1] + (frames[-1] - frames[-2])
        frames.append(pending)
        values.append(float(t))
        pending = None
    return frames, values


def knob_animation(value: str | Brace) -> list[tuple[list[float], list[float]] | float]:
    """A knob value as a list per index of (frames, values) curves or constants."""
    if isinstance(value, str):
        return [float(value)]
    inner = value.text.strip()
    if inner.startswith("curve"):
        # Nuke writes an animated single-value knob as {{curve ...}} (TimeOffset, Grade in real scripts)
        raise ValueError(f"single-value animation must be written {{{{curve ...}}}}, got {{{inner[:30]}...}}")
    out: list[tuple[list[float], list[float]] | float] = []
    for item in words(inner)[0]:
        if isinstance(item, Brace):
            out.append(
                parse_curve(item.text.strip()) if item.text.strip().startswith("curve") else float("nan")
            )
        else:
            out.append(float(item))
    return out


@dataclass
class NkNode:
    cls: str
    knobs: dict[str, str | Brace]
    user_knobs: list[list[str | Brace]]
    inputs: list[NkNode | None]

    @property
    def name(self) -> str:
        v = self.knobs.get("name", "")
        return v if isinstance(v, str) else v.text


def parse_nodes(text: str) -> tuple[list[NkNode], dict[str, list[NkNode]]]:
    """Top-level nodes with their inputs resolved through the node stack; group name -> inner nodes."""
    top: list[NkNode] = []
    inner: dict[str, list[NkNode]] = {}
    stack: list[NkNode | None] = []
    saved: dict[str, NkNode | None] = {}
    frames: list[tuple[list[NkNode], list[NkNode | None], str]] = []
    current = top
    for cmd in words(text):
        head = cmd[0]
        if head == "set":
            saved["$" + str(cmd[1])] = stack[-1] if stack else None
            continue
        if head == "push":
            arg = str(cmd[1])
            stack.append(None if arg == "0" else saved.get(arg))
            continue
        if head in ("version", "end_group", "add_layer") or str(head).startswith("#"):
            if head == "end_group":
                current, stack, _ = frames.pop()
            continue
        if len(cmd) == 2 and isinstance(cmd[1], Brace):
            body = words(cmd[1].text)
            knobs: dict[str, str | Brace] = {}
            user: list[list[str | Brace]] = []
            for kc in body:
                if kc[0] == "addUserKnob":
                    user.append(kc)
                else:
                    knobs[str(kc[0])] = kc[1] if len(kc) > 1 else ""
            n_in = int(str(knobs.get("inputs", "1" if head not in ("Read", "Input", "Root") else "0")))
            ins = [stack.pop() if stack else None for _ in range(n_in)]
            node = NkNode(str(head), knobs, user, ins)
            current.append(node)
            if head != "Root":
                stack.append(node)
            if head == "Group":
                frames.append((current, stack, node.name))
                current = inner.setdefault(node.name, [])
                stack = []
            continue
        raise ValueError(f"unexpected command {cmd!r}")
    return top, inner
