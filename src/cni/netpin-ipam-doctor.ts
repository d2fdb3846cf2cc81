// `netpin doctor` with netpin-ipam: the plugin's DaemonSet on every node, and IPPools that give each
// address a prefix length and a gateway. The CNI configuration on each node is no API object: doctor
// says how to check it by hand.
import { fail, ok, podPools, Unread, warn, type Check, type DoctorInputs } from './doctor.js';
import { subnetsOf, subnetText } from './subnets.js';

/** The chart's label on the DaemonSet that installs the plugin (ipamPlugin.enabled). */
const IPAM_PLUGIN_SELECTOR = 'app.kubernetes.io/component=ipam-plugin';

const CONFLIST_CHECK =
  'on a node, the CNI configuration (the first file of /etc/cni/net.d, or the Multus NetworkAttachmentDefinition) must give the main plugin "capabilities": {"io.kubernetes.cri.pod-annotations": true} and "ipam": {"type": "netpin-ipam", "delegate": {...}}, and /opt/cni/bin must hold netpin-ipam; netpin cannot read either from the API (docs/ipam-plugin.md)';

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
  checks.push(warn(`not checked by doctor: ${CONFLIST_CHECK}`));
  return checks;
}

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
