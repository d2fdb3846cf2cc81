import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, statusOf, VERSION, withTimeout } from '../kube.js';
import { podRecord } from '../pod-tracker.js';
import { RECONCILER_CALL_MS, statefulSetState, type ReconcilerApi } from './api.js';

/** The reconciler's calls through client-node, each with RECONCILER_CALL_MS to answer. */
export function kubeReconcilerApi(kc: KubeConfig, addressKeys: readonly string[]): ReconcilerApi {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const deadline = withTimeout(RECONCILER_CALL_MS);
  const readStatefulSet = async (namespace: string, name: string) => {
    try {
      return statefulSetState(await apps.readNamespacedStatefulSet({ namespace, name }, deadline));
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw e;
    }
  };
  const exists = async (read: () => Promise<unknown>) => {
    try {
      await read();
      return true;
    } catch (e) {
      if (statusOf(e) === 404) return false;
      throw e;
    }
  };
  return {
    async namespacePods(namespace) {
      const list = await core.listNamespacedPod({ namespace }, deadline);
      return list.items.map((pod) => podRecord(pod, addressKeys));
    },
    async statefulSetExists(namespace, name) {
      return (await readStatefulSet(namespace, name)) !== undefined;
    },
    statefulSet: readStatefulSet,
    async daemonSetKeeps(namespace, name, node) {
      return (
        (await exists(() => apps.readNamespacedDaemonSet({ namespace, name }, deadline))) &&
        exists(() => core.readNode({ name: node }, deadline))
      );
    },
    async writePoolStatus(name, status) {
      await custom.patchClusterCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          plural: 'ippools',
          name,
          body: [{ op: 'add', path: '/status', value: status }],
        },
        deadline,
      );
    },
  };
}
