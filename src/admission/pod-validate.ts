import { bandwidthProblems } from '../cni/bandwidth.js';
import { ALLOCATED_KEY, EGRESS_ALLOCATED_KEY } from '../intent/keys.js';
import type { Problem } from '../intent/types.js';
import { parseAddress } from '../net/address.js';
import {
  handWrittenLabels,
  handWrittenProblems,
  netpinLabels,
  ownerProblems,
  STRAY_ALLOCATED,
  strayRecords,
} from './checks.js';
import { checkIntent, type Admit } from './context.js';
import { recordedPlacement, viewPod, type PodView } from './pod-view.js';
import { allowed, refused, type Verdict } from './respond.js';
import type { AdmissionRequest } from './review.js';

const MUTATING_FIX =
  'check that the MutatingWebhookConfiguration of netpin selects this namespace, then create the pod again';

/**
 * Pod CREATE, after every mutating webhook: the values containerd parses must be valid, and what
 * netpin wrote must still be there, unchanged by hand or by another webhook.
 */
export async function validatePodCreate(req: AdmissionRequest, admit: Admit): Promise<Verdict> {
  const view = viewPod(req, req.object!);
  const problems: Problem[] = bandwidthProblems(view.annotations);
  if (!view.hasIntent) problems.push(...strayRecords(view.annotations));
  else problems.push(...(await ownerProblems(view, admit)));
  const expected = view.hasIntent ? await expectedRendering(view, admit, problems) : { annotations: {}, labels: {} };
  // When the pod is refused for what netpin cannot render, what it rendered would only be repeated back.
  if (expected) {
    problems.push(...handWrittenProblems(view.annotations, expected.annotations, admit.dialect));
    problems.push(...handWrittenLabels(view.labels, expected.labels));
  }
  if (problems.length) return refused(problems);
  if (!req.dryRun) recordAllocation(view, admit);
  return allowed();
}

/**
 * The annotations and netpin's labels the netpin intent renders for this pod, checked against what
 * the pod carries; problems go to `problems`. Undefined when it cannot be told, which is a problem.
 */
async function expectedRendering(
  view: PodView,
  admit: Admit,
  problems: Problem[],
): Promise<{ annotations: Record<string, string>; labels: Record<string, string> } | undefined> {
  const { annotations, shape } = view;
  const checked = await checkIntent(annotations, shape, view.namespace, admit, view.parsed);
  problems.push(...checked.problems);
  if (checked.problems.length) return undefined;
  const missing = unrecorded(
    view,
    admit.dialect.pinsAddresses(checked.intent, shape, checked.plan.pools),
    checked.intent.egress?.pools,
  );
  if (missing) {
    problems.push(missing);
    return undefined;
  }
  const placement = recordedPlacement(annotations, checked.intent, checked.plan.pools, admit.index);
  if (typeof placement === 'string') {
    problems.push({
      key: ALLOCATED_KEY,
      message: placement,
      fix: 'do not write netpin.io/allocated by hand: netpin writes it',
    });
    return undefined;
  }
  const rendering = admit.dialect.render(checked.intent, shape, placement);
  const expected = rendering.annotations;
  for (const key of Object.keys(expected).filter((k) => annotations[k] === undefined)) {
    problems.push({
      key,
      message: 'is missing although the netpin intent needs it: another webhook removed it',
      fix: 'find the webhook that strips annotations, or remove the netpin.io/ annotations',
    });
  }
  return { annotations: expected, labels: netpinLabels(rendering, placement) };
}

/** A record of netpin's that the pod lacks, or has where netpin gave nothing. */
function unrecorded(view: PodView, pins: boolean, egressPools: string[] | undefined): Problem | undefined {
  const { annotations } = view;
  if (!pins && annotations[ALLOCATED_KEY] !== undefined) return STRAY_ALLOCATED;
  if (pins && annotations[ALLOCATED_KEY] === undefined) {
    return {
      key: ALLOCATED_KEY,
      message: 'netpin has not pinned this pod: its mutating webhook did not run',
      fix: MUTATING_FIX,
    };
  }
  if (egressPools && annotations[EGRESS_ALLOCATED_KEY] === undefined) {
    return {
      key: EGRESS_ALLOCATED_KEY,
      message: 'netpin has not given this pod its egress address: its mutating webhook did not run',
      fix: MUTATING_FIX,
    };
  }
  return undefined;
}

/**
 * That the pod got addresses from netpin, once it exists. Told from the validating webhook: the mutating
 * one allocated, but the pod had no uid yet, and often no name (generateName); here it has both.
 */
function recordAllocation({ pod, annotations, namespace, statefulSet }: PodView, admit: Admit): void {
  const from = (value: string | undefined) =>
    (value ?? '').split(',').flatMap((text) => {
      const ip = parseAddress(text.trim());
      const pool = ip && admit.index.poolOf(ip);
      return ip ? [pool ? `${ip.toString()} from IPPool ${pool.name}` : ip.toString()] : [];
    });
  const pinned = from(annotations[ALLOCATED_KEY]);
  const given = [...pinned, ...from(annotations[EGRESS_ALLOCATED_KEY]).map((a) => `egress address ${a}`)];
  if (given.length === 0) return;
  const sts = pinned.length ? statefulSet : undefined;
  admit.events?.recordWhenCreated({
    regarding: { apiVersion: 'v1', kind: 'Pod', namespace, name: pod.metadata?.name ?? '', uid: pod.metadata?.uid },
    type: 'Normal',
    reason: 'Allocated',
    action: 'Allocate',
    note: `Allocated ${given.join(', ')}${sts ? ` (the reservation of StatefulSet ${sts.name}, ordinal ${sts.ordinal})` : ''}`,
  });
}
