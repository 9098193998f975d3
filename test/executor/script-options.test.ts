import { describe, expect, it } from 'vitest';
import { DEFAULT_SCRIPT_OPTIONS, parseScriptOptions } from '../../src/executor/script-options.js';

describe('the options export of a script', () => {
  it('defaults to a browser when absent, and reads browser: false and browser: true', () => {
    expect(parseScriptOptions(undefined)).toEqual({ browser: true });
    expect(parseScriptOptions(undefined)).toBe(DEFAULT_SCRIPT_OPTIONS);
    expect(parseScriptOptions({})).toEqual({ browser: true });
    expect(parseScriptOptions({ browser: false })).toEqual({ browser: false });
    expect(parseScriptOptions({ browser: true })).toEqual({ browser: true });
  });

  it.each([
    [null, 'the "options" export must be an object such as { browser: false }, got null'],
    [false, 'the "options" export must be an object such as { browser: false }, got a boolean'],
    [[], 'the "options" export must be an object such as { browser: false }, got an array'],
    [() => ({}), 'the "options" export must be an object such as { browser: false }, got a function'],
    [{ browser: 'false' }, `the "options" export's browser must be true or false, got "false"`],
    [{ browser: 0 }, `the "options" export's browser must be true or false, got 0`],
    [{ browser: null }, `the "options" export's browser must be true or false, got null`],
    [{ browser: false, headless: true }, 'the "options" export has an unknown key "headless"; known keys: browser'],
  ])('refuses %j with one line naming the fix', (value, reason) => {
    expect(parseScriptOptions(value)).toBe(reason);
  });
});
