import { describe, expect, it } from 'vitest';
import { formatCheck } from '../../src/cni/doctor.js';
import { claim, named, web, out, FORBIDDEN, run, outcomes, failing } from './doctor-fixtures.js';

describe('Calico', () => {
  const calicoPools = (...pools: object[]) => ({ 'ippools.crd.projectcalico.org/v1': pools });
  const manual = named('IPPool', 'netpin-web', { cidr: '10.50.0.0/24', nodeSelector: '!all()' });

  it('passes a pool inside a Calico IPPool that never assigns by itself, and pods that netpin gave their addresses', async () => {
    const claims = [
      claim('web', '10.50.0.1', { kind: 'StatefulSet', namespace: 'shop', name: 'db', ordinal: 0 }),
      claim('web', '10.50.0.2', { kind: 'Pod', namespace: 'shop', name: 'solo' }),
      claim('web', '10.50.0.3', { kind: 'Pod', namespace: 'shop', name: '', uid: 'req' }),
    ];
    const pods = [
      { namespace: 'shop', name: 'db-0', podIPs: ['10.50.0.1'] },
      { namespace: 'shop', name: 'solo', podIPs: ['10.50.0.2'] },
      { namespace: 'shop', name: 'new-abc', podIPs: ['10.50.0.3'] },
      { namespace: 'other', name: 'elsewhere', podIPs: ['192.168.0.5'] },
    ];
    const checks = await run('calico', [web], { lists: calicoPools(manual), pods }, claims);
    expect(outcomes(checks)).toEqual(['ok', 'ok']);
    expect(checks[0]!.text).toContain('spec.assignmentMode or spec.nodeSelector');
  });

  it.each<[string, object, RegExp]>([
    [
      'auto-assigning',
      { cidr: '10.50.0.0/24' },
      /assigns from by itself.*Fix: on Calico IPPool netpin-web, set assignmentMode: Manual/,
    ],
    [
      'disabled',
      { cidr: '10.50.0.0/24', nodeSelector: '!all()', disabled: true },
      /which is disabled.*Fix: set disabled: false/,
    ],
    [
      'too small',
      { cidr: '10.50.0.0/25', nodeSelector: '!all()' },
      /lies in no part of Calico IPPool netpin-web.*Fix: create a Calico IPPool over/,
    ],
  ])('fails a pool in a Calico IPPool that is %s, naming the setting to change', async (_, spec, message) => {
    const checks = await run('calico', [web], { lists: calicoPools(named('IPPool', 'netpin-web', spec)) });
    expect(failing(checks)).toEqual([expect.stringMatching(message)]);
  });

  it('warns, without failing, when Calico IPPools cannot be read', async () => {
    const checks = await run('calico', [web], { lists: { 'ippools.crd.projectcalico.org/v1': FORBIDDEN } });
    expect(outcomes(checks)).toEqual(['WARN', 'ok']);
    expect(checks[0]!.text).toContain("could not read Calico's IPPools (HTTP 403");
  });

  it('fails a running pod that uses a pool address netpin did not give it, naming the holder', async () => {
    const claims = [claim('web', '10.50.0.7', { kind: 'Pod', namespace: 'shop', name: 'cart' })];
    const pods = [
      { namespace: 'plain', name: 'rogue', podIPs: ['10.50.0.9'] },
      { namespace: 'shop', name: 'thief', podIPs: ['10.50.0.7'] },
    ];
    const checks = await run('calico', [web], { lists: calicoPools(manual), pods }, claims);
    expect(failing(checks)).toEqual([
      'FAIL  pod plain/rogue uses 10.50.0.9 (status.podIPs) of netpin IPPool web, and netpin holds no IPClaim on it: ' +
        'a pod netpin pins to it would find it taken. Fix: make the Calico IPPool over 10.50.0.1-10.50.0.254 never assign by itself ' +
        '(assignmentMode: Manual, or nodeSelector: "!all()"), then delete pod plain/rogue so that Calico gives it an address elsewhere',
      expect.stringMatching(/^FAIL {2}pod shop\/thief uses 10\.50\.0\.7 .*, which netpin gave to pod shop\/cart: /),
    ]);
  });

  it('warns that an egress pool is of no use on Calico', async () => {
    const checks = await run('calico', [web, out], { lists: calicoPools(manual) });
    expect(checks.map(formatCheck)).toContainEqual(
      expect.stringMatching(/^WARN {2}IPPool out: an egress pool, and Calico \(open source\) has no per-pod egress IP/),
    );
  });
});
