/**
 * The Jinja2 patch layer over @huggingface/jinja, snippet by snippet: each
 * snippet renders with Python's Jinja2 (test/oracle/render_templates.py, set
 * up as transformers sets it up) and with ours, and must give the same text,
 * or fail in both.
 */
import { compileTemplate, renderCompiled } from "../src/core/template-runtime";
import { findPython, runOracle, type OracleJob, type OracleResult } from "./template-oracle";

const DATE = "2024-06-01";
const VARS = {
  d: { x: 1, name: "Ünï", nested: { deep: "v" }, items: [1, 2] },
  people: [
    { name: "bob", age: 30, tags: ["a"] },
    { name: "Alice", age: 25, extra: { city: "Oslo" } },
    { name: "carol", age: 35 },
  ],
  words: ["b", "A", "a", "C"],
  nums: [3, 1, 2, 1],
  text: "  Ünïcødé 漢字 🙂  ",
};

/** [label, template]; VARS and `messages` are defined in both renderers. */
const SNIPPETS: Array<[string, string]> = [
  // Jinja2's Undefined
  ["undefined tests", "{{ u is defined }}|{{ u is undefined }}|{{ u is none }}|{{ u is iterable }}|{{ u is sequence }}|{{ u is mapping }}|{{ u is string }}"],
  ["undefined filters", "{{ u|length }}|{{ u|list }}|{{ u|string }}|{{ u|join(',') }}|{{ u|trim }}|{{ u|upper }}|{{ u|first }}|{{ u|last }}|{{ u|items|list }}|{{ u|default('dflt') }}"],
  ["undefined loop else", "{% for x in u %}a{% else %}empty{% endfor %}"],
  ["undefined compare", "{{ u == none }}|{{ u == u2 }}|{{ u != 1 }}|{{ u ~ 'x' }}|{{ 'a' in u }}|{{ u in ['a'] }}|{{ not u }}|{{ u or 'alt' }}"],
  ["undefined select", "{{ u|selectattr('a')|list }}|{{ none|selectattr('a')|list }}|{{ none|map(attribute='a')|list }}|{{ u|reject|list }}|{{ none|select|list }}"],
  ["undefined attribute raises", "{{ u.x }}"],
  ["undefined item raises", "{{ u['x'] }}"],
  ["undefined call raises", "{{ nothing() }}"],
  ["undefined arithmetic raises", "{{ u + 1 }}"],
  ["undefined tojson raises", "{{ u|tojson }}"],
  ["undefined int raises", "{{ u|int }}"],
  ["missing key then attribute raises", "{{ d.missing.deeper }}"],
  ["missing key is undefined", "{{ d.missing is defined }}|{{ d['missing'] is undefined }}|{{ d.nested.deep }}|{{ d.x.y is defined }}"],
  ["none length raises", "{{ none|length }}"],
  ["loop over none raises", "{% for x in none %}{% endfor %}"],
  // printing values as Python's str()
  ["printing", "{{ true }}|{{ none }}|{{ 1.0 }}|{{ [1, 'a', true, none] }}|{{ {'a': 1, 'b': [none]} }}|{{ (1, 2) }}|{{ 10.0 ** 20 }}|{{ 0.1 + 0.2 }}|{{ -0.0 }}|{{ 1.5 / 10000000 }}|{{ 2 ** 60 }}|{{ 1 / 3 }}|{{ 10.0 ** 16 }}|{{ 10.0 ** 15 }}|{{ 0.0001 }}|{{ 0.00001 * 1 }}|{{ 123456.789 }}"],
  ["printing quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\there', 'nl\\n', 'é'] }}"],
  ["printing concat", "{{ 'x' ~ true ~ none ~ 1.0 ~ [1] }}|{{ d }}"],
  ["printing int-keyed dict", "{{ {1: 'a', 2: 'b'} }}|{{ {0: 0, 512: 128}[512] }}"],
  // operators
  ["arithmetic", "{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 7 // -2 }}|{{ -7.5 // 2 }}|{{ 2 ** -1 }}|{{ 2 ** 10 }}|{{ 3 / 2 }}|{{ 4 / 2 }}|{{ true + 1 }}|{{ 1 + 2.5 }}"],
  ["repetition", "{{ 'ab' * 3 }}|{{ [1] * 2 }}|{{ 2 * 'x' }}|{{ 'x' * 0 }}|{{ [1] + [2] }}"],
  ["string plus int raises", "{{ 'a' + 1 }}"],
  ["division by zero raises", "{{ 1 / 0 }}"],
  ["comparisons", "{{ 'a' < 'b' }}|{{ 'B' < 'a' }}|{{ [1, 2] < [1, 3] }}|{{ 2 > 1.5 }}|{{ 1 == 1.0 }}|{{ '1' == 1 }}|{{ [1] == [1] }}|{{ (1, 2) == [1, 2] }}|{{ true == 1 }}|{{ {'a': 1} == {'a': 1} }}"],
  ["compare str int raises", "{{ 'a' < 1 }}"],
  ["in operator", "{{ 'a' in 'cat' }}|{{ 1 in [1, 2] }}|{{ 1.0 in [1] }}|{{ 'x' in d }}|{{ 'zz' in d }}|{{ 'a' not in ['a'] }}|{{ 512 in {0: 0, 512: 1} }}|{{ '512' in {0: 0, 512: 1} }}"],
  ["in int on string raises", "{{ 1 in 'abc' }}"],
  // strings
  ["string length and index", "{{ '🙂x'|length }}|{{ '🙂x'[1] }}|{{ '🙂x'[-2] }}|{{ 'abc'[::-1] }}|{{ 'héllo'[1:3] }}|{{ text|length }}"],
  ["strip family", "[{{ text|trim }}]|[{{ text.strip() }}]|[{{ 'xxhixx'.strip('x') }}]|[{{ '\\n\\nhi\\n'.lstrip('\\n') }}]|[{{ '  hi  '.rstrip() }}]|[{{ ' \\u00a0x\\u00a0 '.strip() }}]|[{{ '\\ufeffx'.strip() }}]|[{{ 'abcx'|trim('ax') }}]"],
  ["split", "{{ 'a b  c'.split() }}|{{ '  a b  c  '.split(none, 1) }}|{{ 'a,b,,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'x</think>y'.split('</think>')[-1] }}"],
  ["format", "{{ '{} and {}'.format(1, 'two') }}|{{ '{0}{1}{0}'.format('a', 'b') }}|{{ '{name}!'.format(name='n') }}|{{ '{}'.format(true) }}{{ '{}'.format(none) }}{{ '{}'.format([1, 'a']) }}|{{ '{{x}}{!r}'.format('q') }}"],
  ["format mixing raises", "{{ '{} {0}'.format(1) }}"],
  ["string methods", "{{ 'hello world'.title() }}|{{ 'hELLO wORLD'.capitalize() }}|{{ 'aXb'.upper() }}{{ 'AxB'.lower() }}|{{ 'abc'.startswith(('x', 'a')) }}|{{ 'abc'.endswith('bc') }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'ab'.replace('', '-') }}|{{ 'banana'.count('an') }}|{{ '🙂abc'.find('b') }}|{{ '123'.isdigit() }}|{{ ','.join(['a', 'b']) }}"],
  ["string filters", "{{ 'hELLO wORLD'|capitalize }}|{{ 'x'|upper }}|{{ 42|string }}|{{ [1, 2]|join('-') }}|{{ people|join(', ', attribute='name') }}|{{ 'abc'|list }}|{{ 'abc'|first }}{{ 'abc'|last }}"],
  ["indent", "{{ 'a\\nb\\r\\nc\\n'|indent(2) }}|{{ 'a\\n\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'a\\nb'|indent('> ') }}"],
  ["int and float filters", "{{ '12abc'|int }}|{{ ' 12 '|int }}|{{ '1.5'|int }}|{{ '1_000'|int }}|{{ 'x'|int(7) }}|{{ 3.9|int }}|{{ '3.7'|float }}|{{ 'x'|float }}|{{ 2|float }}|{{ none|int }}"],
  // tojson as transformers overrides it
  ["tojson", "{{ 'é 漢 🙂'|tojson }}|{{ {'b': 1, 'a': [1.0, 2.5, none, true]}|tojson }}|{{ '</script>&\\''|tojson }}|{{ 'tab\\tctl\\u0001'|tojson }}|{{ {0: 'zero'}|tojson }}|{{ (1, 2)|tojson }}"],
  ["tojson options", "{{ {'b': 1, 'a': [1, {'c': []}]}|tojson(indent=2, sort_keys=true) }}|{{ [1, 2]|tojson(separators=(',', ':')) }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ '🙂'|tojson(true) }}|{{ {}|tojson(indent=2) }}|{{ [1]|tojson(indent=0) }}"],
  // filters over sequences
  ["dictsort", "{{ {'b': 1, 'A': 2, 'a': 3}|dictsort }}|{{ {'b': 1, 'A': 2}|dictsort(true) }}|{{ {'x': 2, 'y': 1}|dictsort(by='value') }}|{{ {'x': 2, 'y': 1}|dictsort(reverse=true) }}|{% for k, v in {16384: 1024, 0: 0, 512: 128}|dictsort %}{{ k }}={{ v }},{% endfor %}"],
  ["int keys", "{% set m = {0: 'a', 7: 'b'} %}{{ m[7] }}|{{ m.get(0) }}|{{ m.get(9, 'none') }}|{{ m|length }}|{{ m.keys()|list }}|{% for k in m %}{{ k + 1 }}{% endfor %}|{% for k, v in m.items() %}{{ k }}{{ v }}{% endfor %}|{{ m[8] is defined }}"],
  ["select and reject", "{{ nums|select('odd')|list }}|{{ nums|reject('equalto', 1)|list }}|{{ nums|select('gt', 1)|list }}|{{ people|selectattr('extra')|map(attribute='name')|list }}|{{ people|rejectattr('tags', 'defined')|map(attribute='name')|join(',') }}|{{ people|selectattr('extra.city', 'equalto', 'Oslo')|list|length }}|{{ people|selectattr('age', 'ge', 30)|map(attribute='name')|list }}"],
  ["map", "{{ words|map('upper')|list }}|{{ people|map(attribute='tags', default='-')|list }}|{{ nums|map('string')|join }}|{{ people|map(attribute='name')|map('capitalize')|join(' ') }}"],
  ["min max unique sort", "{{ words|min }}|{{ words|max }}|{{ words|unique|list }}|{{ words|unique(true)|list }}|{{ people|min(attribute='age') }}|{{ nums|sort }}|{{ words|sort }}|{{ []|min is defined }}"],
  ["tests", "{{ 1 is number }}{{ true is number }}{{ true is integer }}{{ 1.0 is float }}{{ 'a' is sequence }}{{ {} is iterable }}{{ d is mapping }}{{ 'ab' is lower }}{{ 'A1' is upper }}{{ '1' is lower }}{{ 3 is odd }}{{ 4 is even }}{{ range is callable }}{{ none is none }}"],
  // statements
  ["loop controls", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"],
  ["loop variables", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}"],
  ["loop over string and dict", "{% for c in 'h🙂' %}[{{ c }}]{% endfor %}{% for k in d %}{{ k }},{% endfor %}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}"],
  ["loop filter", "{% for m in messages if m.role == 'user' %}{{ loop.index }}:{{ m.content }}{% endfor %}"],
  ["namespace", "{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% if m.role == 'system' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}{{ ns.n }}"],
  ["macro and caller", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }}{{ greet('b', punct='?') }}{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}in{% endcall %}"],
  ["set block", "{% set x %}block {{ 1 + 1 }}{% endset %}{{ x }}|{{ x|length }}"],
  ["whitespace control", "a\n  {% if true %}\n    b\n  {% endif %}\n  {# note #}\nc {%- if true %} d {% endif -%} e\n{{- ' f' }}"],
  ["range", "{{ range(3)|list }}|{{ range(1, 10, 3)|list }}|{{ range(5, 0, -2)|list }}|{{ range(0)|list }}"],
  ["range too big raises", "{{ range(1000000)|length }}"],
  ["generation tag", "{% for m in messages %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}"],
  ["string escapes", "{{ 'a\\nb' }}|{{ \"\\u00e9\" }}|{{ 'q\\'s' }}"],
  ["strftime_now", "{{ strftime_now('%a %A %b %B %d %e %j %m %y %Y %H %I %M %S %p %-d %-m %U %W %w %u %V %G %F %D %T %c %x %X %%') }}"],
  ["raise_exception", "{% if messages[0].role == 'user' %}{{ raise_exception('Refused: ' ~ messages[0].content) }}{% endif %}"],
];

const MESSAGES = [
  { role: "system", content: "sys" },
  { role: "user", content: "Ünïcødé 🙂" },
  { role: "assistant", content: "ok" },
  { role: "user", content: "again" },
];

let reference: Map<string, OracleResult>;

beforeAll(() => {
  const python = findPython();
  const jobs: OracleJob[] = SNIPPETS.map(([id, template]) => ({ id, template, messages: MESSAGES, variables: VARS }));
  jobs.push({ id: "raise_exception (user first)", template: SNIPPETS.find(([id]) => id === "raise_exception")![1], messages: MESSAGES.slice(1), variables: VARS });
  for (const date of ["2021-01-03", "2024-12-30", "2000-02-29", "1999-12-31"]) {
    jobs.push({ id: `strftime ${date}`, template: SNIPPETS.find(([id]) => id === "strftime_now")![1], messages: MESSAGES, variables: { ...VARS, __date: date } });
  }
  const reply = runOracle(python, jobs.filter((j) => !j.id.startsWith("strftime ")), { date: DATE, bos: "<s>", eos: "</s>" });
  reference = new Map(reply.results.map((r) => [r.id, r]));
  // other pinned dates: one oracle call per date
  for (const j of jobs.filter((j) => j.id.startsWith("strftime "))) {
    const date = (j.variables as { __date: string }).__date;
    reference.set(j.id, runOracle(python, [j], { date, bos: "<s>", eos: "</s>" }).results[0]);
  }
});

function ours(template: string, messages: typeof MESSAGES, date = DATE): { text?: string; error?: string } {
  try {
    return { text: renderCompiled(compileTemplate(template), { ...VARS, messages, add_generation_prompt: true, bos_token: "<s>", eos_token: "</s>" }, date) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

test.each(SNIPPETS)("%s", (id, template) => {
  const want = reference.get(id)!;
  const got = ours(template, MESSAGES);
  if (want.error) {
    expect({ error: got.error !== undefined, text: got.text }).toEqual({ error: true, text: undefined });
  } else {
    expect(got).toEqual({ text: want.text });
  }
});

test("raise_exception with the user message first, and strftime_now on other pinned dates", () => {
  const raised = reference.get("raise_exception (user first)")!;
  expect(raised.error).toMatchObject({ raised: true, message: "Refused: Ünïcødé 🙂" });
  expect(ours(SNIPPETS.find(([id]) => id === "raise_exception")![1], MESSAGES.slice(1))).toEqual({ error: "Refused: Ünïcødé 🙂" });
  for (const date of ["2021-01-03", "2024-12-30", "2000-02-29", "1999-12-31"]) {
    expect(ours(SNIPPETS.find(([id]) => id === "strftime_now")![1], MESSAGES, date)).toEqual({ text: reference.get(`strftime ${date}`)!.text });
  }
});

test("constructs @huggingface/jinja cannot parse or run fail cleanly with the library's message (Jinja2 renders them)", () => {
  // None of llama.cpp's templates uses these; they are listed so a change in the library shows up here.
  for (const t of ["{{ (1,) }}", "{%+ if true %}x{% endif %}", "{% raw %}x{% endraw %}", "{{ 6 is divisibleby 3 }}", "{% with a = 1 %}{{ a }}{% endwith %}",
    "{{ 1e20 }}", "{{ '%s' % 'x' }}", "{{ [1, 2]|sum }}", "{{ 2.5|round }}", "{% for x in [1] %}{{ loop.cycle('a', 'b') }}{% endfor %}"]) {
    expect(ours(t, MESSAGES).error).toEqual(expect.any(String));
  }
});
