// One connection to dockerd, checked up front so that a missing daemon is one
// clear message naming the fix instead of an ECONNREFUSED stack.
import Docker from 'dockerode';
import { SetupError } from '../errors.js';

export async function connectDocker(): Promise<Docker> {
  // dockerode honours DOCKER_HOST (unix:// or tcp://) and defaults to /var/run/docker.sock.
  const docker = new Docker();
  const where = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  try {
    await docker.ping();
  } catch (err) {
    throw new SetupError(
      `cannot reach dockerd at ${where} (${(err as Error).message}); start it with "bash scripts/start-dockerd.sh" ` +
        '(installs nothing; apt-get install docker.io first if dockerd is missing)',
    );
  }
  return docker;
}

/** Whether an image with this tag or ID exists locally. */
export async function imageExists(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch {
    return false;
  }
}
