import { describe, expect, it } from 'vitest';
import { pythonStr } from './python-str.ts';

// Every expected value is what CPython 3 prints for str(json.loads(<the JSON of the input>)).
describe('pythonStr', () => {
  it.each([
    [true, 'True'],
    [false, 'False'],
    [null, 'None'],
  ])('renders the constant %j as %s', (value, expected) => {
    expect(pythonStr(value)).toBe(expected);
  });

  it.each([
    [0, '0'],
    [42, '42'],
    [-7, '-7'],
    [0.5, '0.5'],
    [-2.25, '-2.25'],
    [0.1, '0.1'],
    [0.0001, '0.0001'],
    [1e-7, '1e-07'],
    [2.5e-8, '2.5e-08'],
    [1e21, '1e+21'],
    [1.5e300, '1.5e+300'],
  ])('renders the number %j as %s', (value, expected) => {
    expect(pythonStr(value)).toBe(expected);
  });

  it('passes a top-level string through unchanged, quotes and all', () => {
    for (const s of ['', 'liver', "it's", 'say "hi"', 'a\\b', 'a\nb', 'True', 'None']) expect(pythonStr(s)).toBe(s);
  });

  it('renders lists with single-quoted strings', () => {
    expect(pythonStr(['a', 'b'])).toBe("['a', 'b']");
    expect(pythonStr([])).toBe('[]');
    expect(pythonStr([1, 0.5, true, null])).toBe('[1, 0.5, True, None]');
    expect(pythonStr([[1, 2], ['x']])).toBe("[[1, 2], ['x']]");
  });

  it('renders dicts in insertion order with quoted keys', () => {
    expect(pythonStr({ k: [1, 'x'] })).toBe("{'k': [1, 'x']}");
    expect(pythonStr({})).toBe('{}');
    expect(pythonStr({ b: { c: null, d: false }, a: 'y' })).toBe("{'b': {'c': None, 'd': False}, 'a': 'y'}");
    expect(pythonStr([{ k: 'v' }])).toBe("[{'k': 'v'}]");
  });

  it("quotes strings like Python's repr: double quotes when the text has ' and no \"", () => {
    expect(pythonStr(["it's"])).toBe(`["it's"]`);
    expect(pythonStr(['say "hi"'])).toBe(`['say "hi"']`);
    expect(pythonStr([`it's "x"`])).toBe(`['it\\'s "x"']`);
    expect(pythonStr({ "o'k": 1 })).toBe(`{"o'k": 1}`);
  });

  it('escapes backslashes and control characters inside containers', () => {
    expect(pythonStr(['a\\b'])).toBe("['a\\\\b']");
    expect(pythonStr(['a\nb'])).toBe("['a\\nb']");
    expect(pythonStr(['a\tb\rc'])).toBe("['a\\tb\\rc']");
    expect(pythonStr(['\u0001\u007f'])).toBe("['\\x01\\x7f']");
  });

  it('keeps printable non-ASCII text as is', () => {
    expect(pythonStr(['Leber', 'Müller', '肝臓', '🫁'])).toBe("['Leber', 'Müller', '肝臓', '🫁']");
  });
});
