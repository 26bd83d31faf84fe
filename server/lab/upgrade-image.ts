// The lab's upgrade (--upgrade-server): a second server image of this tree, told
// apart by its dev.bootfarm.build label (the Dockerfile's last layer), built while
// the node runs; bootfarm's container is then replaced by one of it.
import { connectDocker } from '../image/docker.js';
import { buildServerImage } from './server-image.js';

/** The image an upgrade replaces bootfarm/server:lab with. */
export const UPGRADE_IMAGE = 'bootfarm/server:lab-upgrade';

export async function buildUpgradeImage(log: (line: string) => void): Promise<string> {
  const docker = await connectDocker();
  const report = await buildServerImage(docker, { tag: UPGRADE_IMAGE, buildId: `lab-upgrade-${Date.now()}`, log });
  return report.imageId;
}

export async function imageIdOf(tag: string): Promise<string> {
  return (await (await connectDocker()).getImage(tag).inspect()).Id;
}
