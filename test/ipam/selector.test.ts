import { describe, expect, it } from 'vitest';
import { matchesSelector, type LabelSelector } from '../../src/ipam/selector.js';

const labels = { team: 'web', tier: 'front' };

describe('matchesSelector', () => {
  it.each<[string, LabelSelector, boolean]>([
    ['the empty selector', {}, true],
    ['matchLabels that match', { matchLabels: { team: 'web' } }, true],
    ['matchLabels with another value', { matchLabels: { team: 'db' } }, false],
    ['matchLabels with a missing key', { matchLabels: { zone: 'a' } }, false],
    ['In with the value', { matchExpressions: [{ key: 'team', operator: 'In', values: ['db', 'web'] }] }, true],
    ['In without the value', { matchExpressions: [{ key: 'team', operator: 'In', values: ['db'] }] }, false],
    ['In on a missing key', { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }, false],
    ['NotIn with the value', { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['web'] }] }, false],
    ['NotIn on a missing key', { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, true],
    ['Exists', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, true],
    ['Exists on a missing key', { matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, false],
    ['DoesNotExist', { matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, true],
    ['DoesNotExist on a present key', { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] }, false],
    ['an unknown operator', { matchExpressions: [{ key: 'team', operator: 'Gt' as 'In', values: ['1'] }] }, false],
    [
      'labels and expressions together (AND)',
      { matchLabels: { team: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['back'] }] },
      false,
    ],
  ])('%s: %s', (_, selector, matches) => {
    expect(matchesSelector(selector, labels)).toBe(matches);
  });

  it('does not take inherited properties for labels', () => {
    expect(matchesSelector({ matchExpressions: [{ key: 'toString', operator: 'Exists' }] }, {})).toBe(false);
  });
});
