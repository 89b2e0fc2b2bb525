/** The Aspen release this source tree builds. */
export const ASPEN_VERSION = "0.1.0";
