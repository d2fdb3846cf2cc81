// The CNIs' own CRDs, for the tests that check netpin against them. Calico's and Cilium's come
// from their Go modules (the Go module proxy serves their source, which is all the CRDs need);
// Antrea's and Kube-OVN's modules are not served, so theirs are written in test/e2e/crds (see the READMEs).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { applyCrdFile, type Clients } from './cluster.js';
import { repoPath } from './controlplane.js';

const execFileP = promisify(execFile);

// The newest version the proxy serves; its crd.projectcalico.org/v1 IPPool has cidr, disabled,
// nodeSelector and allowedUses (assignmentMode came later, so the tests use nodeSelector "!all()").
const CALICO_MODULE = 'github.com/projectcalico/calico@v1.11.0-cni-plugin.0.20250813170300-a0db560f0520';
const CILIUM_MODULE = 'github.com/cilium/cilium@v1.20.2';

/** Downloads a module (cached by Go after the first time) and returns its directory. */
async function moduleDir(module: string): Promise<string> {
  const { stdout } = await execFileP('go', ['mod', 'download', '-json', module], {
    env: { ...process.env, GOFLAGS: '-mod=mod' },
    maxBuffer: 1 << 20,
    timeout: 600_000,
  });
  const dir = (JSON.parse(stdout) as { Dir?: string; Error?: string }).Dir;
  if (!dir) throw new Error(`go mod download ${module} gave no directory: ${stdout}`);
  return dir;
}

/** Calico's IPPool (crd.projectcalico.org/v1). */
export async function applyCalicoIPPoolCrd(c: Clients): Promise<void> {
  await applyCrdFile(
    c,
    join(await moduleDir(CALICO_MODULE), 'libcalico-go/config/crd/crd.projectcalico.org_ippools.yaml'),
  );
}

/** Cilium's CiliumEgressGatewayPolicy (cilium.io/v2). */
export async function applyCiliumEgressCrd(c: Clients): Promise<void> {
  await applyCrdFile(
    c,
    join(await moduleDir(CILIUM_MODULE), 'pkg/k8s/apis/cilium.io/client/crds/v2/ciliumegressgatewaypolicies.yaml'),
  );
}

/** Cilium's CiliumPodIPPool (cilium.io/v2alpha1), the pools of multi-pool IPAM. */
export async function applyCiliumPodIPPoolCrd(c: Clients): Promise<void> {
  await applyCrdFile(
    c,
    join(await moduleDir(CILIUM_MODULE), 'pkg/k8s/apis/cilium.io/client/crds/v2alpha1/ciliumpodippools.yaml'),
  );
}

/** Antrea's IPPool (crd.antrea.io/v1beta1), written here as its Egress CRDs are. */
export async function applyAntreaIPPoolCrd(c: Clients): Promise<void> {
  await applyCrdFile(c, repoPath('test/e2e/crds/antrea', 'ippools.yaml'));
}

/** Kube-OVN's Subnet (kubeovn.io/v1): its module is not served either (test/e2e/crds/kube-ovn). */
export async function applyKubeOvnSubnetCrd(c: Clients): Promise<void> {
  await applyCrdFile(c, repoPath('test/e2e/crds/kube-ovn', 'subnets.yaml'));
}

/** Antrea's Egress and ExternalIPPool (crd.antrea.io/v1beta1). */
export async function applyAntreaEgressCrds(c: Clients): Promise<void> {
  for (const file of ['externalippools.yaml', 'egresses.yaml'])
    await applyCrdFile(c, repoPath('test/e2e/crds/antrea', file));
}

export async function createCalicoPool(c: Clients, name: string, spec: Record<string, unknown>): Promise<void> {
  await c.custom.createClusterCustomObject({
    group: 'crd.projectcalico.org',
    version: 'v1',
    plural: 'ippools',
    body: { apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: { name }, spec },
  });
}
