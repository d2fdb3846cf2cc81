import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { parseQuantity, wholeValue } from '../../intent/quantity.js';
import type { PodQuota } from '../../ipam/ledger.js';
import { describeApiError, WITHIN_ADMISSION } from '../kube.js';

/**
 * The namespace's pods quota (Ledger.podQuota). Read when a StatefulSet reserves, which is rare: no
 * watch is kept. Only quotas without scopes count, as they apply to every pod. An unreadable list (no
 * RBAC to list resourcequotas) is logged and reads as no limit: admissions go on, checked against the
 * pools' spec.namespaceLimit alone.
 */
export async function readPodQuota(kc: KubeConfig, namespace: string, log?: Logger): Promise<PodQuota | undefined> {
  let items;
  try {
    items = (await kc.makeApiClient(CoreV1Api).listNamespacedResourceQuota({ namespace }, WITHIN_ADMISSION)).items;
  } catch (e) {
    log?.warn(
      { namespace, err: describeApiError(e) },
      'cannot read ResourceQuotas: reservations are not counted against pods quotas',
    );
    return undefined;
  }
  let least: PodQuota | undefined;
  for (const q of items) {
    if (q.spec?.scopes?.length || q.spec?.scopeSelector) continue;
    for (const key of ['pods', 'count/pods']) {
      const text = q.spec?.hard?.[key];
      const f = text === undefined ? undefined : parseQuantity(String(text));
      if (!f) continue;
      const pods = Number(wholeValue(f));
      if (!least || pods < least.pods) least = { pods, quota: `${q.metadata?.name ?? ''} (${key}: ${String(text)})` };
    }
  }
  return least;
}
