import type { KubeObject } from '../admission/review.js';
import { workloadInfo } from '../cluster/view.js';

// The pods a workload's controller makes, as `netpin preview` builds them.

/**
 * Stands for the pod-template hash the controllers put in names and labels (`<deploy>-<hash>-<suffix>`,
 * `pod-template-hash`, `controller-revision-hash`): a valid DNS label and label value, plainly not a hash.
 */
const HASH = 'preview';

interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: object;
}

/** A pod as a controller makes one from its template (controller.GetPodFromTemplate), owned by the controller. */
function podFromTemplate(
  workload: KubeObject,
  owner: { kind: string; name: string },
  labels: Record<string, string>,
  name?: string,
): KubeObject {
  const template: PodTemplate = workload.spec?.template ?? {};
  const ref = { apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, controller: true, blockOwnerDeletion: true };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(name && { name }),
      generateName: `${owner.name}-`,
      namespace: workload.metadata!.namespace,
      labels: { ...template.metadata?.labels, ...labels },
      ...(template.metadata?.annotations && { annotations: { ...template.metadata.annotations } }),
      ownerReferences: [ref],
    },
    spec: structuredClone(template.spec ?? {}),
  };
}

/**
 * The pods of the Deployment's ReplicaSet `<deploy>-preview`. They are sent to the webhook with
 * generateName only, as the ReplicaSet controller sends them; the API server names them afterwards.
 */
export function deploymentPods(deployment: KubeObject, count: number): KubeObject[] {
  const rs = `${deployment.metadata!.name}-${HASH}`;
  return Array.from({ length: count }, () =>
    podFromTemplate(deployment, { kind: 'ReplicaSet', name: rs }, { 'pod-template-hash': HASH }),
  );
}

/** The StatefulSet controller's pods: `<sts>-<ordinal>`, with the labels, hostname and subdomain it gives each. */
export function statefulSetPods(sts: KubeObject, count: number): KubeObject[] {
  const name = sts.metadata!.name!;
  const { ordinalsStart } = workloadInfo('StatefulSet', sts.spec);
  return Array.from({ length: count }, (_, k) => {
    const pod = `${name}-${ordinalsStart + k}`;
    const labels = {
      'controller-revision-hash': `${name}-${HASH}`,
      'statefulset.kubernetes.io/pod-name': pod,
      'apps.kubernetes.io/pod-index': String(ordinalsStart + k),
    };
    const p = podFromTemplate(sts, { kind: 'StatefulSet', name }, labels, pod);
    p.spec = { ...p.spec, hostname: pod, ...(sts.spec?.serviceName && { subdomain: sts.spec.serviceName }) };
    return p;
  });
}
