import { dirname, join } from 'node:path';
import { ErrorCodes, IsthmusError, SystemRunner, createLogger } from '../../core/index.ts';
import { loadKubeConfig } from '../../core/k8s.ts';
import { readState } from '../state.ts';
import { corednsBinary } from '../versions.ts';
import { SandboxKubelet } from './kubelet.ts';

/**
 * `isthmus sandbox kubelet --cluster-dir <sandbox>/clusters/<name>`: the process the
 * sandbox starts for each cluster. Runs until SIGTERM/SIGINT; leaves pods running
 * when it stops (a restarted kubelet adopts them).
 */
export async function runKubelet(clusterDir: string): Promise<number> {
  const sandboxDir = dirname(dirname(clusterDir));
  const state = await readState(sandboxDir);
  const cluster = state?.clusters.find((c) => c.dir === clusterDir);
  if (cluster === undefined) {
    throw new IsthmusError(ErrorCodes.NOT_FOUND, `no sandbox cluster at ${clusterDir}; start the sandbox with \`isthmus sandbox up\``);
  }
  const logger = createLogger({ component: 'sandbox-kubelet', cluster: cluster.name });
  const kubeConfig = loadKubeConfig({ kubeconfig: join(clusterDir, 'kubelet.kubeconfig') });
  const kubelet = new SandboxKubelet({ cluster, kubeConfig, runner: new SystemRunner(), logger, corednsBinary: corednsBinary() });
  await kubelet.start();
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await kubelet.stop();
  logger.info('sandbox kubelet stopped; pods keep running');
  return 0;
}
