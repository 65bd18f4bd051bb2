import { baseURL } from "./playwright.config";

/** Polls the home page until the server answers, for at most two minutes. */
export default async function waitForServer(): Promise<void> {
  const deadline = Date.now() + 120_000;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(baseURL);
      if (response.ok) return;
      lastError = new Error(`GET ${baseURL} answered ${response.status}`);
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the server at ${baseURL} never answered: ${lastError}`);
}
