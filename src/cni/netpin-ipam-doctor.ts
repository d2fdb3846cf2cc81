// `netpin doctor` with netpin-ipam: the plugin's DaemonSet on every node, and IPPools that give each
// address a prefix length and a gateway. The CNI configuration on each node is no API object: doctor
// judges it by the pods it ran (on netpin's addresses or not), and says how to check it by hand.
import { fail, ok, podPools, Unread, warn, type Check, type DoctorInputs } from './doctor.js';
import { parseAddress } from '../net/address.js';
import { subnetsOf, subnetText } from './subnets.js';

/** The chart's label on the DaemonSet that installs the plugin (ipamPlugin.enabled). */
const IPAM_PLUGIN_SELECTOR = 'app.kubernetes.io/component=ipam-plugin';

const CONFLIST_CHECK =
  'on each node, the CNI configuration (the first file of /etc/cni/net.d, or the Multus NetworkAttachmentDefinition) must give the main plugin "capabilities": {"io.kubernetes.cri.pod-annotations": true} and "ipam": {"type": "netpin-ipam", "delegate": {...}}, and /opt/cni/bin must hold netpin-ipam; netpin cannot read either from the API (docs/ipam-plugin.md)';

export async function netpinIpamChecks(inputs: DoctorInputs): Promise<Check[]> {
  const checks = [await daemonSetCheck(inputs)];
  for (const pool of podPools(inputs.pools)) {
    const { subnets, problems } = subnetsOf(pool);
    if (problems.length === 0) {
      const each = subnets.map((s) => `${subnetText(s)} via ${s.gateway.toString()}`).join(', ');
      checks.push(ok(`IPPool ${pool.name}: netpin-ipam places its addresses in ${each}`));
    } else {
      for (const p of problems) checks.push(fail(`IPPool ${pool.name} (${p.key}): ${p.message}`, p.fix));
    }
  }
  checks.push(...(await runningChecks(inputs)));
  return checks;
}

/**
 * What the nodes did, read from the pods they run: a pod running on another address than netpin gave
 * it shows a node whose chain does not hand netpin-ipam the pod's annotations (the plugin then asks its
 * delegate), or does not run netpin-ipam at all.
 */
async function runningChecks(inputs: DoctorInputs): Promise<Check[]> {
  const pods = (await inputs.source.runningPods()).filter((p) => p.allocated !== undefined && p.podIPs.length > 0);
  const astray = pods.filter((p) => !sameAddresses(p.podIPs, p.allocated!.split(',')));
  if (astray.length > 0) {
    const named = astray
      .slice(0, SHOWN_PODS)
      .map((p) => `${p.namespace}/${p.name} runs on ${p.podIPs.join(',')}, not ${p.allocated}`);
    const more = astray.length > SHOWN_PODS ? `; and ${astray.length - SHOWN_PODS} more` : '';
    return [fail(`running pods that netpin addressed use other addresses: ${named.join('; ')}${more}`, CONFLIST_CHECK)];
  }
  if (pods.length > 0) {
    return [
      ok(
        `every running pod netpin addressed (${pods.length}) runs on its netpin.io/allocated: the nodes running them hand netpin-ipam the pod's annotations`,
      ),
    ];
  }
  return [
    warn(`no running pod netpin addressed yet, and doctor cannot read a node's CNI configuration`, CONFLIST_CHECK),
  ];
}

/** The same addresses, however each side writes them; a text that is no address never matches. */
function sameAddresses(a: readonly string[], b: readonly string[]): boolean {
  const canonical = (list: readonly string[]) => list.map((t) => parseAddress(t)?.toString() ?? `?${t}`).sort();
  const [x, y] = [canonical(a), canonical(b)];
  return x.length === y.length && x.every((t, i) => t === y[i]);
}

/** Pods named in one line; the count says how many more. */
const SHOWN_PODS = 5;

async function daemonSetCheck(inputs: DoctorInputs): Promise<Check> {
  const [sets, nodes] = await Promise.all([inputs.source.daemonSets(IPAM_PLUGIN_SELECTOR), inputs.source.nodeCount()]);
  const install = 'install the chart with ipamPlugin.enabled=true, or put netpin-ipam in /opt/cni/bin of every node';
  if (sets instanceof Unread)
    return warn(`could not read DaemonSets (${sets.reason}): not checked that netpin-ipam is installed on every node`);
  if (sets.length === 0)
    return warn(
      `no DaemonSet labelled ${IPAM_PLUGIN_SELECTOR} installs netpin-ipam: check that every node has it in /opt/cni/bin`,
      install,
    );
  const names = sets.map((s) => `${s.namespace}/${s.name}`).join(', ');
  const ready = sets.reduce((n, s) => n + s.ready, 0);
  const desired = sets.reduce((n, s) => n + s.desired, 0);
  if (ready < desired)
    return fail(
      `DaemonSet ${names} has netpin-ipam ready on ${ready} of ${desired} nodes: pods on the others fail in ContainerCreating`,
      `see kubectl -n ${sets[0]!.namespace} describe daemonset ${sets[0]!.name}`,
    );
  if (typeof nodes === 'number' && desired < nodes)
    return warn(
      `DaemonSet ${names} runs on ${desired} of ${nodes} nodes: pods netpin addresses on the others fail in ContainerCreating unless netpin-ipam is there by other means`,
      "widen the DaemonSet's nodeSelector and tolerations (ipamPlugin.nodeSelector, ipamPlugin.tolerations)",
    );
  return ok(
    `DaemonSet ${names} has netpin-ipam ready on ${ready} of ${typeof nodes === 'number' ? nodes : desired} nodes`,
  );
}
