import { describe, expect, test } from '@jest/globals';
import { parseDestination } from '../../dataplane/destinations/parse.js';
import { DestinationRegistry, type DestinationChange } from '../../dataplane/destinations/registry.js';
import { DestinationError } from '../../dataplane/destinations/errors.js';

const d = (name: string, host = `${name.toLowerCase()}.example.test`, source = 'test') =>
  parseDestination({ Name: name, URL: `https://${host}` }, { source });

describe('DestinationRegistry', () => {
  test('later sources win on equal names (ignoring case); lookups ignore case', () => {
    const registry = new DestinationRegistry(['a.yaml', 'b.yaml', 'env']);
    registry.update('env', [d('Orders', 'env.example.test')]);
    registry.update('a.yaml', [d('orders', 'file-a.example.test'), d('billing')]);
    registry.update('b.yaml', [d('billing', 'file-b.example.test')]);
    expect(registry.get('orders')?.url?.host).toBe('env.example.test');
    expect(registry.get('ORDERS')?.name).toBe('Orders');
    expect(registry.sourceOf('orders')).toBe('env');
    expect(registry.get('billing')?.url?.host).toBe('file-b.example.test');
    expect(registry.names()).toEqual(['Orders', 'billing']);
    expect(registry.list().map((x) => x.name)).toEqual(['Orders', 'billing']);
    expect(registry.overrides()).toEqual([
      { name: 'Orders', source: 'env', hidden: ['a.yaml'] },
      { name: 'billing', source: 'b.yaml', hidden: ['a.yaml'] },
    ]);
    expect(registry.get('unknown')).toBeUndefined();
  });

  test('names(): the same array until the destinations change (the DNS server compares by identity)', () => {
    const registry = new DestinationRegistry(['file']);
    registry.update('file', [d('orders'), d('billing')]);
    const first = registry.names();
    expect(first).toEqual(['billing', 'orders']);
    expect(registry.names()).toBe(first);
    registry.update('file', [d('orders'), d('billing'), d('stock')]);
    const second = registry.names();
    expect(second).not.toBe(first);
    expect(second).toEqual(['billing', 'orders', 'stock']);
    expect(first).toEqual(['billing', 'orders']);
  });

  test('a source that removes a name uncovers the lower source again', () => {
    const registry = new DestinationRegistry(['file', 'env']);
    registry.update('file', [d('orders', 'file.example.test')]);
    registry.update('env', [d('orders', 'env.example.test')]);
    const change = registry.update('env', []);
    expect(registry.get('orders')?.url?.host).toBe('file.example.test');
    expect(change).toEqual({ added: [], removed: [], updated: ['orders'] });
  });

  test('listeners hear added, removed and updated names, and nothing when nothing changed', () => {
    const registry = new DestinationRegistry();
    const changes: DestinationChange[] = [];
    const off = registry.onChange((c) => changes.push(c));
    registry.update('f', [d('a'), d('b')]);
    registry.update('f', [d('a'), d('b')]); // new objects, same configuration
    registry.update('f', [d('a', 'moved.example.test'), d('c')]);
    off();
    registry.update('f', []);
    expect(changes).toEqual([
      { added: ['a', 'b'], removed: [], updated: [] },
      { added: ['c'], removed: ['b'], updated: ['a'] },
    ]);
    expect(registry.names()).toEqual([]);
  });

  test('a change in key store content is an update', () => {
    const registry = new DestinationRegistry();
    const base = d('a');
    registry.update('f', [{ ...base, keyStore: { location: 'c.p12', content: Buffer.from('one') } }]);
    const change = registry.update('f', [
      { ...base, keyStore: { location: 'c.p12', content: Buffer.from('two') } },
    ]);
    expect(change.updated).toEqual(['a']);
  });

  test('errors of all sources, in precedence order', () => {
    const registry = new DestinationRegistry(['file', 'env']);
    registry.update('env', [], [new DestinationError('env', 'bad env')]);
    registry.update('file', [], [new DestinationError('file', 'bad file')]);
    expect(registry.errors().map(String)).toEqual(['file: bad file', 'env: bad env']);
  });

  test('every listener is called even if one throws; the first error is rethrown', () => {
    const registry = new DestinationRegistry();
    const seen: string[] = [];
    registry.onChange(() => {
      throw new Error('listener 1 failed');
    });
    registry.onChange((c) => seen.push(...c.added));
    expect(() => registry.update('f', [d('a')])).toThrow('listener 1 failed');
    expect(seen).toEqual(['a']);
    expect(registry.get('a')).toBeDefined();
  });
});
