// The pure request checks of the admin API (src/admin/request_checks.ts) and the config-body
// scan (src/admin/body_limits.ts), on the edge cases the process-level tests do not reach.

import { describe, expect, it } from 'vitest';
import { scanConfigText } from '../../src/admin/body_limits.js';
import { checkBodyType, checkHost, checkSameOrigin } from '../../src/admin/request_checks.js';

describe('checkHost', () => {
  it('accepts loopback names and literals with any port, and the bound or reached address', () => {
    for (const h of ['localhost', 'localhost:1', 'LOCALHOST:15000', '127.0.0.1', '127.9.8.7:80', '[::1]', '[::1]:15000', '127.1:15000']) {
      expect([h, checkHost(h, '127.0.0.1', '127.0.0.1')]).toEqual([h, null]);
    }
    // Bound to a LAN address: that address is accepted (with a token file, as required at start).
    expect(checkHost('10.0.0.5:15000', '10.0.0.5', '10.0.0.5')).toBeNull();
    // Bound to the wildcard: the address the connection arrived at.
    expect(checkHost('10.0.0.5:15000', '::ffff:10.0.0.5', '0.0.0.0')).toBeNull();
    expect(checkHost('[fd00::5]:15000', 'fd00::5', '::')).toBeNull();
  });

  it('refuses names (DNS rebinding), other addresses, odd forms and a missing Host', () => {
    for (const h of [
      undefined,
      '',
      'evil.example',
      'evil.example:15000',
      'localhost.evil.example',
      '127.0.0.1.nip.io',
      'localhost.',
      '10.0.0.6:15000',
      'user@127.0.0.1',
      '127.0.0.1/x',
      '0.0.0.0:15000',
    ]) {
      expect([h, checkHost(h, '10.0.0.5', '0.0.0.0')]).not.toEqual([h, null]);
    }
  });
});

describe('checkSameOrigin', () => {
  it('no Origin and no Sec-Fetch-Site (curl, scripts, Prometheus) or same-origin → accepted', () => {
    expect(checkSameOrigin(undefined, undefined, '127.0.0.1:15000')).toBeNull();
    expect(checkSameOrigin(undefined, 'none', '127.0.0.1:15000')).toBeNull();
    expect(checkSameOrigin('http://127.0.0.1:15000', 'same-origin', '127.0.0.1:15000')).toBeNull();
    expect(checkSameOrigin('http://localhost', undefined, 'localhost:80')).toBeNull();
    expect(checkSameOrigin('http://[::1]:15000', undefined, '[::1]:15000')).toBeNull();
  });

  it('another site, scheme, port or host, `null`, and cross-site fetch metadata → refused', () => {
    for (const [o, s] of [
      ['http://evil.example', undefined],
      ['null', undefined],
      ['https://127.0.0.1:15000', undefined],
      ['http://127.0.0.1:15001', undefined],
      ['http://localhost:15000', undefined],
      ['not a url', undefined],
      [undefined, 'cross-site'],
      [undefined, 'same-site'],
    ] as const) {
      expect([o, s, checkSameOrigin(o, s, '127.0.0.1:15000')]).not.toEqual([o, s, null]);
    }
  });
});

describe('checkBodyType', () => {
  it('JSON and YAML types (with parameters) only', () => {
    for (const t of ['application/json', 'Application/JSON; charset=utf-8', 'application/yaml', 'application/x-yaml', 'text/yaml'])
      expect(checkBodyType(t)).toBeNull();
    for (const t of [undefined, '', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
      expect(checkBodyType(t)).toContain('Content-Type');
    }
  });
});

describe('scanConfigText', () => {
  it('passes ordinary configs: brackets in quotes, comments, regexes and plain scalars do not count', () => {
    const text = [
      'listeners:',
      '  - name: main   # [[[[[[[[ not nesting',
      '    routes:',
      `      - match: {path_regex: "${'['.repeat(100)}", headers: {x: {regex: '${'{'.repeat(100)}'}}}`,
      `        cluster: a${'['.repeat(100)}`,
      `      - {match: {path_prefix: /x}, cluster: b}`,
    ].join('\n');
    expect(scanConfigText(text)).toBeNull();
  });

  it('refuses flow nesting deeper than 64 (YAML or JSON) at the line where it happens', () => {
    expect(scanConfigText(`${'['.repeat(64)}${']'.repeat(64)}`)).toBeNull();
    expect(scanConfigText(`a: 1\nb: ${'['.repeat(65)}`)).toMatchObject({ path: '', line: 2, message: expect.stringContaining('nested deeper than 64') });
    expect(scanConfigText(`${'{"a":'.repeat(65)}1${'}'.repeat(65)}`)?.message).toContain('nested deeper than 64');
  });

  it('refuses more than 100,000 items', () => {
    expect(scanConfigText(`[${Array(100_001).fill('1').join(',')}]`)?.message).toContain('more than 100000 values');
    expect(scanConfigText('- 1\n'.repeat(100_001))?.message).toContain('more than 100000 values');
    expect(scanConfigText('- 1\n'.repeat(99_000))).toBeNull();
  });
});
