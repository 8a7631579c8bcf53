"""Dispatchers for Claude Code slash commands, skills and agents: the text side (pure functions,
no I/O).

While an experiment on a project command (`.claude/commands/<name>.md`) or skill
(`.claude/skills/<name>/SKILL.md`, which people type and the model runs the same way) runs, its file
may hold a *dispatcher* in place of its text, so that people who type `/name` as usual take part in
the experiment. Claude Code's UserPromptSubmit hook (the plugin's `hook prompt`) sees `/name args`,
assigns a trial and hands the model the text of the assigned arm with the arguments put in, as
Claude Code itself would have (`render`); the dispatcher's own text tells the model to follow it.
The Stop hook records the run. `dispatch_ops` installs and removes dispatchers and runs the hooks.

Only the body is tested this way: both arms must run with the same front matter (a dispatcher has
one), and a body with shell lines (!`cmd`) or file references (@path) is refused, because Claude
Code expands those when it reads the file, and the arm's text reaches the model after that.
"""

from __future__ import annotations

import json
import re
from contextlib import suppress
from pathlib import Path

COMMANDS_DIR = ".claude/commands/"
SKILLS_DIR = ".claude/skills/"
SKILL_FILE = "SKILL.md"
AGENTS_DIR = ".claude/agents/"
MARKER = "<!-- meta-experiment dispatcher"
# Front matter keys that only describe the command (its menu entry), not how it runs: the arms may differ in them.
DESCRIPTIVE_KEYS = frozenset({"description", "argument-hint", "when_to_use"})

_FRONT = re.compile(r"\A---[ \t]*\r?\n(?:.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.S)
_SHELL = re.compile(r"!`[^`\n]+`|^[ \t]*```!", re.M)
_FILE_REF = re.compile(r"(?<![\w`])@[\w.~-]*/[\w./~-]*|(?<![\w`])@[\w~-]+\.[A-Za-z0-9]{1,8}\b")
_EXPERIMENT_LINE = re.compile(re.escape(MARKER) + r" for experiment (\S+?):(?:\s|$)")
# Claude Code hands a hook's additional context over whole up to 10,000 characters (longer, it keeps
# a 2 KB preview and a file path: measured with its CLI 2.1.332); the arm's text must fit.
CONTEXT_LIMIT = 9_900
TEXT_LIMIT = CONTEXT_LIMIT - 1_500  # a command's text: room for the hook's words and some arguments
# Claude Code 2.1's substitution, checked against its CLI in tests/test_dispatch_cli.py: \$ escapes
# (not after another backslash), $ARGUMENTS[i] and $i (not followed by a letter, digit or _) are the
# i-th (0-based) shell-parsed word (kept as written past the last word, and then not counted as a
# placeholder), $ARGUMENTS is the whole argument string (trimmed); with no placeholder filled in, the
# arguments follow as "ARGUMENTS: ...". ${CLAUDE_SESSION_ID} is the session's id.
_PLACEHOLDER = re.compile(r"(?<!\\)\\\$(ARGUMENTS|\d+)|\$ARGUMENTS\[(\d+)\]|\$ARGUMENTS|\$(\d+)(?!\w)")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def command_name(production: str) -> str | None:
    """`.claude/commands/review.md` -> `review`; `.claude/commands/git/pr.md` -> `git:pr` (how
    Claude Code names a command in a subfolder); None for any other file."""
    if not production.startswith(COMMANDS_DIR) or not production.endswith(".md"):
        return None
    rel = production[len(COMMANDS_DIR) : -len(".md")]
    parts = rel.split("/")
    if not rel or any(not p or p.startswith(".") or ":" in p or " " in p for p in parts):
        return None
    return ":".join(parts)


def skill_name(production: str) -> str | None:
    """`.claude/skills/greet/SKILL.md` -> `greet` (its folder: Claude Code also answers to the name
    in its front matter, which a dispatched skill must leave the same or out); None for any other
    file."""
    if not production.startswith(SKILLS_DIR) or not production.endswith("/" + SKILL_FILE):
        return None
    name = production[len(SKILLS_DIR) : -len(SKILL_FILE) - 1]
    return name if re.fullmatch(r"[\w.-]+", name) and not name.startswith(".") else None


def skill_path(name: str) -> str | None:
    """The project file of skill `name` (the inverse of `skill_name`), None when `name` cannot be one."""
    if not re.fullmatch(r"[\w.-]+", name) or name.startswith("."):
        return None
    return f"{SKILLS_DIR}{name}/{SKILL_FILE}"


def slash_name(production: str) -> str | None:
    """What a person types after the slash to run this file: a command's or a skill's name."""
    return command_name(production) or skill_name(production)


def agent_name(production: str) -> str | None:
    """`.claude/agents/reviewer.md` -> `reviewer` (the subagent_type Claude Code launches it by, when
    its front matter's name is the same); None for any other file."""
    if not production.startswith(AGENTS_DIR) or not production.endswith(".md"):
        return None
    name = production[len(AGENTS_DIR) : -len(".md")]
    return name if re.fullmatch(r"[\w.-]+", name) and not name.startswith(".") else None


def agent_path(name: str) -> str | None:
    """The project file of agent `name` (a launch's subagent_type), None when `name` cannot be one."""
    if not re.fullmatch(r"[\w.-]+", name) or name.startswith("."):
        return None
    return f"{AGENTS_DIR}{name}.md"


def label(production: str) -> str:
    """How the person calls it: `/review` for a command or a skill, `agent reviewer` for an agent."""
    name = slash_name(production)
    if name is not None:
        return f"/{name}"
    agent = agent_name(production)
    return f"agent {agent}" if agent is not None else production


def command_path(name: str) -> str | None:
    """The project file of command `name` (the inverse of `command_name`), None when `name` cannot
    be one (it comes from what a person typed)."""
    if not re.fullmatch(r"[\w.-]+(?::[\w.-]+)*", name) or any(p.startswith(".") for p in name.split(":")):
        return None
    return COMMANDS_DIR + name.replace(":", "/") + ".md"


def split_front_matter(text: str) -> tuple[str, str]:
    """(front matter with its --- lines, or "" without one; the body after it)."""
    m = _FRONT.match(text)
    return (m.group(0), text[m.end() :]) if m else ("", text)


def _running_keys(front: str) -> list[str]:
    """The front matter's lines that change how the command runs (all but DESCRIPTIVE_KEYS, with
    their continuation lines), for comparing two arms."""
    out, skip = [], False
    for line in front.splitlines()[1:-1]:
        if line[:1] not in (" ", "\t", "-", "") or not line.strip():
            skip = line.split(":", 1)[0].strip() in DESCRIPTIVE_KEYS
        if not skip and line.strip():
            out.append(line.rstrip())
    return out


def _differing_keys(control_front: str, treatment_front: str) -> list[str]:
    """The front matter keys (other than DESCRIPTIVE_KEYS) whose lines differ between the arms."""
    a, b = _running_keys(control_front), _running_keys(treatment_front)
    return [] if a == b else sorted({line.split(":", 1)[0].strip() for line in set(a) ^ set(b)})


def dispatch_problem(production: str, control: str, treatment: str, *, duration: bool = True) -> str | None:
    """Why a dispatcher cannot run this file's experiment, or None when it can. `duration`: the
    primary metric is a duration (what a dispatched agent's run can be measured by)."""
    if agent_name(production) is not None:
        return _agent_problem(production, control, treatment, duration)
    name = slash_name(production)
    stem = production[len(COMMANDS_DIR) : -len(".md")]
    if (
        name is None
        and production.startswith(COMMANDS_DIR)
        and production.endswith(".md")
        and re.search(r"[^\w./-]", stem)
    ):
        typed = stem.replace("/", ":")
        return (
            f"/{typed} ({production}) has characters other than letters, digits, '.', '-' and '_' in its name "
            "(a space, say), which the hook cannot tell apart in a prompt. Rename the command, or run the "
            "trials with assign."
        )
    if name is None:
        return (
            f"{production!r} is not a project slash command, skill or agent (a .md file under {COMMANDS_DIR} or "
            f"{AGENTS_DIR}, or a {SKILLS_DIR}<name>/{SKILL_FILE}); a dispatcher stands in for one that people (or "
            "the model) call as usual. Run the experiment's trials with assign instead."
        )
    if skill_name(production) is not None:
        problem = _skill_problem(name, control)
        if problem is not None:
            return problem
    elif command_path(name) != production:
        return (
            f"/{name} has characters other than letters, digits, '.', '-' and '_' in its name, which the hook "
            "cannot tell apart in a prompt. Rename the command, or run the trials with assign."
        )
    for arm, text in (("production", control), ("variant", treatment)):
        if text.startswith("\ufeff"):
            return (
                f"The {arm} file of /{name} starts with a byte order mark (BOM), so its front matter cannot be "
                "read reliably. Save it as UTF-8 without a BOM (production before creating the experiment)."
            )
        body = split_front_matter(text)[1]
        if len(body) > TEXT_LIMIT:
            return (
                f"The {arm} text of /{name} is {len(body):,} characters; a dispatcher hands over up to {TEXT_LIMIT:,} "
                f"(Claude Code passes a hook's context whole only up to about {CONTEXT_LIMIT + 100:,} characters, and "
                "shows the model a 2 KB preview of a longer one; the hook's own words and the arguments need the "
                "rest). Run the trials with assign."
            )
    control_front, control_body = split_front_matter(control)
    treatment_front, treatment_body = split_front_matter(treatment)
    a = _running_keys(control_front)
    differ = _differing_keys(control_front, treatment_front)
    if differ:
        return (
            f"The arms of /{name} differ in their front matter ({', '.join(differ)}), and a dispatcher has one "
            "front matter for both: it can test only the text of the command. Make the variant's front matter "
            "the same as production's (description, argument-hint and when_to_use may differ), or run the trials "
            "with assign."
        )
    if any(line.split(":", 1)[0].strip() == "arguments" for line in a):
        return (
            f"/{name} declares named arguments (arguments: in its front matter), which the dispatcher does not "
            "fill in. Use $ARGUMENTS or $0, $1... in both arms, or run the trials with assign."
        )
    for arm, body in (("production", control_body), ("variant", treatment_body)):
        for pattern, what in ((_SHELL, "a shell line (!`...`)"), (_FILE_REF, "a file reference (@path)")):
            found = pattern.search(body)
            if found:
                return (
                    f"The {arm} text of /{name} has {what}: {found.group(0)!r}. Claude Code expands those when it "
                    "reads the command's file, and a dispatcher hands the arm's text to the model after that, so "
                    "it would not be expanded. Run the trials with assign instead."
                )
    return None


def _skill_problem(name: str, control: str) -> str | None:
    """What only a skill can have against it: another name, or a run in a subagent of its own."""
    front = split_front_matter(control)[0]
    named = _front_value(front, "name")
    if named not in (None, "", "~", "null", name):
        return (
            f"The skill in {SKILLS_DIR}{name}/ names itself {named!r} (name: in its front matter), and Claude "
            f"Code runs it by either name, which the hook cannot both follow. Make its name {name!r} (or leave name: "
            "out), or run the trials with assign."
        )
    if _front_value(front, "context") == "fork":
        return (
            f"The skill /{name} runs in a subagent of its own (context: fork), which does not see the text a hook "
            "hands over. Run the trials with assign."
        )
    return None


def _front_value(front: str, key: str) -> str | None:
    """The value of a one-line `key:` in front matter (quotes and a trailing comment taken off), ""
    for an empty one, None when the key is not there."""
    m = re.search(rf"^{re.escape(key)}[ \t]*:(.*)$", front, re.M)
    if m is None:
        return None
    value = m.group(1).strip()
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        return value[1:end] if end > 0 else value[1:]
    return re.sub(r"\s+#.*$", "", value).strip()


def _agent_problem(production: str, control: str, treatment: str, duration: bool) -> str | None:
    agent = agent_name(production)
    for arm, text in (("production", control), ("variant", treatment)):
        if text.startswith("\ufeff"):
            return f"The {arm} file of agent {agent} starts with a byte order mark (BOM); save it as UTF-8 without one."
    front = split_front_matter(control)[0]
    named = re.search(r"^name:[ \t]*[\"']?([^\"'\s]+)", front, re.M)
    if named is None or named.group(1) != agent:
        return (
            f"The agent file {production} does not name itself {agent!r} (name: in its front matter), so the hook "
            "cannot tell from a launch (its subagent_type) that it is this agent. Give it that name, or run the "
            "trials with assign."
        )
    differ = _differing_keys(front, split_front_matter(treatment)[0])
    if differ:
        return (
            f"The arms of agent {agent} differ in their front matter ({', '.join(differ)}), and a dispatcher has "
            "one front matter for both: it can test only the agent's instructions. Make the variant's front "
            "matter the same as production's (the description may differ), or run the trials with assign."
        )
    if not duration:
        return (
            f"A dispatched run of agent {agent} is measured by its time (from its launch to its end): the "
            "experiment's primary metric must be a duration (a unit such as s or min). Run the trials with assign "
            "to record another metric."
        )
    return None


def agent_instructions(text: str) -> str:
    """An agent file's instructions: its body (Claude Code's system prompt for the agent)."""
    return split_front_matter(text)[1].strip()


def dispatcher_text(experiment_id: str, production: str, control: str) -> str:
    """The dispatcher for `production`: production's front matter (its menu entry and permissions
    stay) and a body that tells the model where this run's text is."""
    name = slash_name(production)
    front, body = split_front_matter(control)
    if front and not front.endswith("\n"):
        front += "\n"
    agent = agent_name(production)
    if agent is not None:
        return (
            f"{front}{MARKER} for experiment {experiment_id}: while it runs, this file stands in for agent {agent}. "
            "The original comes back byte for byte when the experiment ends (a promotion writes the winner). "
            f"Do not edit this file; to stop dispatching, call meta-experiment's dispatch tool with on=false. -->\n"
            f"Your instructions for this task are at the start of the task you were given, between "
            f"<agent-instructions> tags (meta-experiment, experiment {experiment_id}, is testing two versions of "
            "them): follow them as your own instructions. If the task has none, the experiment may have just "
            f"ended: read {production}, and if it no longer holds this dispatcher, follow its instructions; "
            "otherwise do the task as it is asked.\n"
        )
    if not re.search(r"^description:", front, re.M):  # else the menu would show the dispatcher's first line
        first = next((line.strip() for line in body.splitlines() if line.strip()), f"/{name}")
        line = "description: " + json.dumps(first[:200], ensure_ascii=False) + "\n"
        front = front[: front.index("\n") + 1] + line + front[front.index("\n") + 1 :] if front else f"---\n{line}---\n"
    return (
        f"{front}{MARKER} for experiment {experiment_id}: while it runs, this file stands in for /{name}. "
        "The original comes back byte for byte when the experiment ends (a promotion writes the winner). "
        f"Do not edit this file; to stop dispatching, call meta-experiment's dispatch tool with on=false. -->\n"
        f"/{name} is under an A/B test (meta-experiment, experiment {experiment_id}). Its text for this run was "
        f'added as context by meta-experiment\'s hook, headed "meta-experiment: the text of /{name} for this run": '
        "follow that text as this command's instructions, and do what it says about recording the run.\n\n"
        "If that text is not there (the command was started another way, or the meta-experiment plugin's hooks "
        f'are off), call meta-experiment\'s assign tool with experiment_id "{experiment_id}" and unit '
        '"session ${CLAUDE_SESSION_ID}" (runs of one conversation stay in one arm), follow the content '
        "of the file it returns (after its front matter) as this command's instructions with the arguments "
        "below, and when done call record with the trial_id it gave. If assign says the experiment has ended, "
        f"the original file is back: read {production} and follow it (after its front matter) with the "
        "arguments below. If assign says there is no experiment with that id, this session was started in a "
        "subfolder of the project that runs the experiment, and its meta-experiment server reads the subfolder: "
        f"tell the person to run /{name} from that project's top folder for this run (or with shorter "
        "arguments, which the hook can hand over), and do not run it without its instructions.\n\n"
        "Arguments: $ARGUMENTS\n"
    )


def dispatcher_experiment(text: str) -> str | None:
    """The experiment id a dispatcher names, None when `text` is not a dispatcher."""
    m = _EXPERIMENT_LINE.search(text)  # anywhere: an edited dispatcher is still one (and is backed up)
    return m.group(1) if m else None


def render(text: str, arguments: str, session_id: str = "", skill_dir: str | None = None) -> str:
    """What Claude Code sends the model for a command file `text` run with `arguments`: the body
    (front matter removed, leading blank space dropped) with the placeholders filled in; without
    any placeholder, the arguments follow as a last "ARGUMENTS: ..." paragraph. For a skill,
    `skill_dir` is its folder (${CLAUDE_SKILL_DIR}); Claude Code puts a line naming it first, which
    the dispatcher's own expansion has given the model already."""
    _, body = split_front_matter(text)
    body = _noncharacters(body.lstrip().replace("${CLAUDE_SESSION_ID}", session_id))
    if skill_dir is not None:
        body = body.replace("${CLAUDE_SKILL_DIR}", skill_dir)
    arguments = _noncharacters(arguments.strip(JS_SPACE_CHARS))  # JavaScript's trim()
    words = [_escape_bangs(word) for word in split_words(arguments)]
    arguments = _escape_bangs(arguments)
    used = False

    def fill(m: re.Match[str]) -> str:
        nonlocal used
        escaped, indexed, positional = m.group(1), m.group(2), m.group(3)
        if escaped is not None:
            return "$" + escaped
        if indexed is None and positional is None:
            used = True
            return arguments
        i = int(indexed if indexed is not None else positional)
        if i >= len(words):  # kept as written, and not counted as a placeholder
            return m.group(0)
        used = True
        return words[i]

    out = _PLACEHOLDER.sub(fill, body)
    if not used and arguments:
        out += f"\n\nARGUMENTS: {arguments}"
    return out


def _noncharacters(text: str) -> str:
    """U+FFFE and U+FFFF, which Claude Code uses as markers while it fills placeholders, become
    U+FFFD in the text and in the arguments, as they do in Claude Code (CLI 2.1.332, seen)."""
    return text.replace("\ufffe", "\ufffd").replace("\uffff", "\ufffd")


_TERMINATORS = frozenset(";&|<>)\n\r")
# Claude Code parses the arguments with tree-sitter-bash and takes the words of the first command
# (declaration keywords alone, as `export a b` is one declaration); above 10,000 UTF-16 units it
# splits at blanks only (its CLI 2.1.332, read and checked).
_DECLARATIONS = frozenset({"export", "declare", "typeset", "readonly", "local"})
_PARSE_LIMIT = 10_000
_SPECIAL_PARAMETERS = frozenset("@*#?$!-")
_KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "esac", "{", "!"})
_NAMED_HEADERS = frozenset({"for", "select", "function"})


def _escape_bangs(text: str) -> str:
    """Claude Code puts a backslash before a ! that starts the text or follows a blank (its shell
    mode and history prefix), in the whole argument string and in each word."""
    return re.sub(r"(^|\s)!", lambda m: m.group(1) + "\\!", text)


def split_words(text: str) -> list[str]:
    """The words of a command's arguments for $0, $1..., as Claude Code 2.1 reads them (a shell
    command line, parsed as tree-sitter-bash does, with its CLI's results as the reference):
    - blanks separate; '...' and "..." quote (a backslash escapes outside quotes and is kept inside
      them); an unclosed quote is kept as written and runs to the end (`a'b c` is one word);
    - an operator (; & | < > and a closing parenthesis), a line break or a comment (#) ends the
      words; a parenthesised group after the first word is left out (with a word joined to its
      start, `e(f)`), an opening parenthesis before it is skipped; a backslash at the end of a
      line joins the next;
    - before the first word, the shell's keywords are skipped (if, then, else, elif, fi, do, done,
      while, until, esac, {, and ! alone: `if possible be quick` is possible, be, quick), and so are
      for, select and function with the name after them (`for the release notes` is release,
      notes; `for x in y` has no command, so blanks split it);
    - leading NAME=value assignments are not words; after the first word, neither is a lone `=`,
      a lone `$`, nor a word that is one expansion alone ($name, $5, ${...}, $((...)), $'...': an
      unclosed ${ or $' ends the words);
      an expansion joined to other text stays as written (`$5.00`, `a$x`);
    - a command substitution (`...` or $(...)) ends the words, unless it is in the first word,
      which keeps it as written;
    - a first word that is a declaration keyword (export, declare, typeset, readonly, local), with
      no assignment before it, is the only word.
    When that leaves no word (`#42 fast`), the words are the blank-separated pieces."""
    if len(text.encode("utf-16-le", "surrogatepass")) // 2 > _PARSE_LIMIT:
        return text.split()
    words: list[str] = []
    started = False  # the first word (the command's name) has been read
    assigned = False  # NAME=value words came before it
    header: str | None = None  # for, select or function read (its name comes next); "name" once it has
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _TERMINATORS or c == "#":
            break
        if c in " \t":
            i += 1
            continue
        if c == "(":
            if not started:
                i += 1
                continue
            close = _closing(text, i + 1, "(", ")")
            if close < 0:
                break
            i = close + 1
            continue
        i, parts = _word(text, i)
        if not parts:  # a line joined to the next
            continue
        raw = "".join(part for _, part in parts if _ != "value")
        value = "".join(part for kind, part in parts if kind != "raw")
        kinds = {kind for kind, _ in parts}
        if not started:
            if _ASSIGNMENT.match(raw):
                assigned = True
                continue
            plain = kinds == {"plain"}
            if header in _NAMED_HEADERS:  # the loop's variable, or the function's name
                header = "name" if header != "function" else None
                continue
            if header == "name":
                header = None
                if plain and value == "in":  # a loop's header: no command in it
                    return text.split()
            if plain and value in _KEYWORDS:
                continue
            if plain and value in _NAMED_HEADERS:
                header = value
                continue
            started = True
            if "substitution" in kinds:
                words.append(raw)
            elif kinds == {"plain"} and value in _DECLARATIONS and not assigned:
                return [value]
            else:
                words.append(value)
            continue
        if "substitution" in kinds:
            break
        if text.startswith("(", i):  # `e(f)`: left out with its group
            continue
        if (len(parts) == 1 and parts[0][0] == "expansion") or raw in ("=", "$"):
            continue
        words.append(value)
    return words or text.split()


def _word(text: str, i: int) -> tuple[int, list[tuple[str, str]]]:
    """One word from `i`: (where it ends, its parts). A part is (kind, text): "plain" text as
    written and as read; "quoted" pairs of ("raw", as written) and ("value", what it reads as) for
    quotes and escapes; "expansion" and "substitution" (kept as written)."""
    parts: list[tuple[str, str]] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t(" or c in _TERMINATORS:
            break
        if text.startswith("\\\n", i):  # the line goes on
            i += 2
        elif c == "\\":  # escapes the next character; a last one escapes nothing and goes
            parts += [("raw", text[i : i + 2]), ("value", text[i + 1 : i + 2])]
            i += 2
        elif c in "'\"":
            end = text.find(c, i + 1) if c == "'" else _closing_double_quote(text, i + 1)
            if end < 0:  # unclosed: the rest, quote and all
                parts += [("raw", text[i:]), ("value", text[i:])]
                i = n
            else:
                parts += [("raw", text[i : end + 1]), ("value", text[i + 1 : end])]
                i = end + 1
        elif c == "`":
            end = text.find("`", i + 1)
            end = n - 1 if end < 0 else end
            parts.append(("substitution", text[i : end + 1]))
            i = end + 1
        elif c == "$" and i + 1 < n:
            i = _dollar(text, i, parts)
        else:
            parts.append(("plain", c))
            i += 1
    return i, parts


def _dollar(text: str, i: int, parts: list[tuple[str, str]]) -> int:
    """A `$` at `i` inside a word: its expansion or substitution appended to `parts`; where it ends."""
    n, nxt = len(text), text[i + 1]
    if text.startswith("$((", i):
        close = _closing(text, i + 2, "(", ")")  # the parenthesis that matches the first one
        if close >= 0 and text[close - 1] == ")":
            parts.append(("expansion", text[i : close + 1]))
            return close + 1
    if nxt == "(":
        close = _closing(text, i + 2, "(", ")")
        end = n if close < 0 else close + 1
        parts.append(("substitution", text[i:end]))
        return end
    if nxt == "{":
        close = _closing(text, i + 2, "{", "}")
        if close < 0:  # unclosed: the words end here
            parts.append(("substitution", text[i:]))
            return n
        parts.append(("expansion", text[i : close + 1]))
        return close + 1
    if nxt == "'":
        close = text.find("'", i + 2)
        if close < 0:  # unclosed: the words end here
            parts.append(("substitution", text[i:]))
            return n
        parts.append(("expansion", text[i : close + 1]))
        return close + 1
    name = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(text, i + 1)
    if name:
        parts.append(("expansion", text[i : name.end()]))
        return name.end()
    if nxt.isdigit() or nxt in _SPECIAL_PARAMETERS:
        parts.append(("expansion", text[i : i + 2]))
        return i + 2
    parts.append(("plain", "$"))
    return i + 1


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """Where the `closing` bracket that matches one opened just before `start` is; -1 if none."""
    depth = 1
    for j in range(start, len(text)):
        if text[j] == opening:
            depth += 1
        elif text[j] == closing:
            depth -= 1
            if depth == 0:
                return j
    return -1


def _closing_double_quote(text: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i
        else:
            i += 1
    return -1


# JavaScript's \s (and String.prototype.trim's): Claude Code splits a command's name from its arguments
# there, so a no-break space (pasted) or an ideographic space (a Japanese IME) after /name separates too.
# Python's \s also takes \x1c-\x1f, which JavaScript does not.
JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
JS_SPACE_CHARS = (
    "\t\n\v\f\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def parse_prompt(prompt: str) -> tuple[str, str] | None:
    """`/name args` -> (name, args); None for a prompt that is not a slash command."""
    m = re.match(rf"/([\w.:-]+)(?:[{JS_SPACE}]+(.*))?\Z", prompt, re.S)  # "  /x" is text to Claude Code
    return (m.group(1), m.group(2) or "") if m else None


COPIES_SCANNED = 2_000  # files looked at for copies of a dispatcher (a project's commands, skills, agents)


def dispatcher_copies(root: Path, experiment_id: str, production: str) -> list[str]:
    """The project's commands, skills and agents other than `production` that hold this
    experiment's dispatcher: the command renamed or copied while it was dispatched (a review found
    /code-review holding /review's dispatcher long after the experiment ended)."""
    found: list[str] = []
    candidates = [
        *(root / COMMANDS_DIR).rglob("*.md"),
        *(root / SKILLS_DIR).glob(f"*/{SKILL_FILE}"),
        *(root / AGENTS_DIR).rglob("*.md"),
    ]
    for path in candidates[:COPIES_SCANNED]:
        rel = path.relative_to(root).as_posix()
        if rel == production:
            continue
        with suppress(OSError):
            small = path.is_file() and path.stat().st_size < 65_536  # (a dispatcher is a page of text)
            if small and dispatcher_experiment(path.read_bytes().decode("utf-8", "replace")) == experiment_id:
                found.append(rel)
    return sorted(found)
