#!/usr/bin/env python3
"""Reference renderer for test/templates.test.ts: Python Jinja2 set up the way
Hugging Face transformers' apply_chat_template sets it up.

The environment mirrors transformers (utils/chat_template_utils.py and
tokenization_utils_base.apply_chat_template), re-implemented here from its
documented behaviour:
  - ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
    loopcontrols extension and a `generation` block tag that renders its body;
  - raise_exception(msg) raises jinja2's TemplateError;
  - tojson is json.dumps with ensure_ascii=False (non-ASCII kept, no HTML escaping);
  - strftime_now(fmt) formats a pinned date (midnight) instead of the clock;
  - render(messages=..., add_generation_prompt=..., bos_token=..., eos_token=...).
    `tools` and `documents` stay undefined (what safety-lens renders, and what
    transformers did before 4.42); a job with "tools_none": true passes them as
    None, as transformers >= 4.42 does when no tools are given.

One process renders every job. Input (stdin, JSON):
  {"date": "YYYY-MM-DD", "bos_token": str, "eos_token": str,
   "add_generation_prompt": bool,
   "jobs": [{"id": str, "template": str, "messages": [...], "tools_none"?: bool, "variables"?: {...}}]}
"variables" adds render variables (the runtime tests use it for snippets).
Output (stdout, JSON, ASCII-escaped):
  {"python": str, "jinja2": str, "results": [{"id", "text"} | {"id", "error": {"type", "message", "raised"}}]}
"raised" is true when the template itself called raise_exception.
"""
import json
import sys
from datetime import datetime

try:
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:  # the test turns this into a clear failure
    sys.stderr.write("render_templates.py: cannot import jinja2 (%s)\n" % e)
    sys.exit(3)


class TemplateRaised(jinja2.exceptions.TemplateError):
    """What raise_exception throws (a TemplateError, as in transformers), marked so the test can tell it apart."""


class GenerationTag(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %}: transformers' assistant-mask tag; outside mask tracking it renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


def make_env(date):
    pinned = datetime.strptime(date, "%Y-%m-%d")

    def raise_exception(message):
        raise TemplateRaised(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return pinned.strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    req = json.load(sys.stdin)
    env = make_env(req["date"])
    compiled = {}
    results = []
    for job in req["jobs"]:
        out = {"id": job["id"]}
        try:
            src = job["template"]
            if src not in compiled:
                compiled[src] = env.from_string(src)
            variables = dict(
                messages=job["messages"],
                add_generation_prompt=req["add_generation_prompt"],
                bos_token=req["bos_token"],
                eos_token=req["eos_token"],
            )
            if job.get("tools_none"):
                variables.update(tools=None, documents=None)
            variables.update(job.get("variables") or {})
            out["text"] = compiled[src].render(**variables)
        except Exception as e:  # every failure is data for the test
            out["error"] = {"type": type(e).__name__, "message": str(e), "raised": isinstance(e, TemplateRaised)}
        results.append(out)
    json.dump({"python": sys.version.split()[0], "jinja2": jinja2.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
