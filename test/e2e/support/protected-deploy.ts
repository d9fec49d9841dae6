// A gated upgrade of the release `conduit` in the namespace given, to a target marked protected, with
// the terminal confirmation deploy.ts uses: run it on a pseudo-terminal (`script`) to answer, or press
// Ctrl-C, at the question. Prints `OUTCOME <json>` (result, revision) or `ERROR <message>` and exits
// with the deploy's exit code (0, 1, 130).
// Usage: node --import tsx test/e2e/support/protected-deploy.ts NAMESPACE ANNOTATION_VALUE
import { confirmOnTerminal } from '../../../scripts/lib/core/cli.ts';
import { executeDeploy, planDeploy } from '../../../scripts/lib/engines/deploy.ts';
import { isUserError } from '../../../scripts/lib/core/errors.ts';
import { readRelease } from '../../../scripts/lib/domain/helmrelease.ts';
import { connectKube, LOCAL_CONTEXT, localTarget } from '../../../scripts/lib/domain/target.ts';
import { tool } from '../../../scripts/lib/adapters/tools.ts';
import { Reporter } from '../../../scripts/lib/core/ui.ts';
import { localDeployRequest } from './deployrequest.ts';

const [namespace, value] = process.argv.slice(2);
const kube = await connectKube({ context: LOCAL_CONTEXT, kubeconfig: localTarget().kubeconfig });
const installed = await readRelease(kube, namespace, 'conduit');
if (!installed) throw new Error(`no release conduit in ${namespace}`);
const plan = planDeploy(localDeployRequest(namespace, { overrides: { api: { podAnnotations: { 'e2e.conduit.dev/protected': value } } }, protected: true, actor: 'e2e@terminal' }), await tool('helm'));
const ui = Object.assign(new Reporter({ json: false }), { confirm: confirmOnTerminal });
try {
  const out = await executeDeploy(plan, kube, ui, { yes: false, gate: { release: installed, validate: async () => undefined } });
  console.log(`OUTCOME ${JSON.stringify({ result: out.result, revision: out.revision })}`);
} catch (e) {
  console.log(`ERROR ${(e as Error).message.split('\n')[0]}`);
  process.exitCode = isUserError(e) ? e.exitCode : 1;
}
