// How the scripts in this folder launch a browser: Debian's Chromium, never a downloaded one,
// with the flags that keep it off the network (as playwright.config.ts does for the suite).
export const chromiumLaunchOptions = {
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
  ],
};
