// What an image or version directory may be called: letters, digits, . _ -, not
// starting with . _ or -, so the staging directories of a publish or a gc
// (`.<version>.tmp-*`, `.<version>.gc-*`) never pass for a version. One rule for
// the publisher, gc, the NBD catalog and the boot files that read the directories.
export const IMAGE_DIR_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;
