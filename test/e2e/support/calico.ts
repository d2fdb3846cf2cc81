// Calico's own CRDs, from the Calico Go module (libcalico-go/config/crd/), for the tests that
// check netpin against Calico IPPools. The Go module proxy serves the module's source, not a
// build of it (its nested api module is refused), which is all the CRDs need.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { waitFor, type Clients } from './cluster.js';

const execFileP = promisify(execFile);

// The newest version the proxy serves; its crd.projectcalico.org/v1 IPPool has cidr, disabled,
// nodeSelector and allowedUses (assignmentMode came later, so the tests use nodeSelector "!all()").
export const CALICO_MODULE = 'github.com/projectcalico/calico@v1.11.0-cni-plugin.0.20250813170300-a0db560f0520';

/** Downloads the module (cached by Go after the first time) and returns its directory. */
async function moduleDir(): Promise<string> {
  const { stdout } = await execFileP('go', ['mod', 'download', '-json', CALICO_MODULE], { env: { ...process.env, GOFLAGS: '-mod=mod' }, maxBuffer: 1 << 20 });
  const dir = (JSON.parse(stdout) as { Dir?: string; Error?: string }).Dir;
  if (!dir) throw new Error(`go mod download ${CALICO_MODULE} gave no directory: ${stdout}`);
  return dir;
}

/** Applies Calico's IPPool CRD and waits until the API serves it. */
export async function applyCalicoIPPoolCrd(c: Clients): Promise<void> {
  const file = join(await moduleDir(), 'libcalico-go/config/crd/crd.projectcalico.org_ippools.yaml');
  const crd = parse(readFileSync(file, 'utf8')) as V1CustomResourceDefinition;
  await c.ext.createCustomResourceDefinition({ body: crd });
  await waitFor(`CRD ${crd.metadata!.name} established`, async () => {
    const got = await c.ext.readCustomResourceDefinition({ name: crd.metadata!.name! });
    return got.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True');
  });
}

export async function createCalicoPool(c: Clients, name: string, spec: Record<string, unknown>): Promise<void> {
  await c.custom.createClusterCustomObject({
    group: 'crd.projectcalico.org',
    version: 'v1',
    plural: 'ippools',
    body: { apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: { name }, spec },
  });
}
