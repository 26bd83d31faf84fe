// nbdkit's file plugin serves the files directly inside one directory, so its
// export names cannot contain '/': an export <image>/<arch> is served as
// <image>_<arch>. One rule for the backend that serves them
// (server/nbd/backends/nbdkit.ts) and the boot files that name them
// (server/boot/node-context.ts).
export function nbdkitExportName(name: string): string {
  return name.replace(/\//g, '_');
}
