// The exports an external NBD server is configured with: one per published
// image/arch (through the `current` link, so each new connection opens the
// version live at that moment, as the built-in server does) plus nbd.exports.
import { readdir, realpath } from 'node:fs/promises';
import path from 'node:path';

export interface ExternalExport {
  name: string;
  file: string;
}

export async function listExternalExports(imagesDir: string, staticExports: ExternalExport[]): Promise<ExternalExport[]> {
  const out = [...staticExports];
  const images = await readdir(imagesDir, { withFileTypes: true }).catch(() => []);
  for (const image of images) {
    if (!image.isDirectory()) continue;
    const current = path.join(imagesDir, image.name, 'current');
    for (const arch of await readdir(current, { withFileTypes: true }).catch(() => [])) {
      const file = path.join(current, arch.name, 'root.squashfs');
      if (
        await realpath(file).then(
          () => true,
          () => false,
        )
      )
        out.push({ name: `${image.name}/${arch.name}`, file });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
