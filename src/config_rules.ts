/**
 * The rules between settings: what {@linkcode crossCheck} refuses or warns about once each setting
 * is valid on its own, and the predicates ({@linkcode hasFlows}, {@linkcode hasWorker},
 * {@linkcode hasGraphToken}) that say which parts of the service a configuration turns on.
 *
 * The service fails closed: with the placeholder values of `.env.example`, or with echo replies
 * or media capture on and no access token, outside development, the configuration is refused. In
 * development these are warnings (and echo and media capture stay off). Settings that cannot work
 * together are refused too (a retry base delay above the maximum delay), and so is a WhatsApp Flows
 * private key that cannot be read (damaged, encrypted without its passphrase, not RSA, under 2048
 * bits); an app secret too short to be Meta's is a warning.
 *
 * @module
 */
import type { Config, LoadConfigOptions } from "./config.ts";
import { FlowsKeyError, readFlowsPrivateKey } from "./flows/keys.ts";

/** The placeholder secrets of `.env.example`: accepted only in development, with a warning. */
export const DEVELOPMENT_PLACEHOLDERS = {
  APP_SECRET: "dev-app-secret-change-me",
  VERIFY_TOKEN: "dev-verify-token-change-me",
  ADMIN_TOKEN: "dev-admin-token-change-me",
} as const;

/**
 * Meta's app secrets are 32 hex characters; a secret shorter than this cannot be one (a typo, or a
 * value copied from the wrong field) and gets a warning: no delivery from Meta would verify.
 */
const MIN_APP_SECRET_LENGTH = 16;

/** Options for {@linkcode crossCheck}. */
export interface CrossCheckOptions extends LoadConfigOptions {
  /** What a refusal or a warning calls each setting: its variable, or the field itself. */
  naming: (field: keyof Config) => string;
}

/** What {@linkcode crossCheck} made of a configuration whose settings are each valid. */
export interface CrossChecked {
  /** The configuration, with echo replies and media capture off where development turned them off. */
  config: Config;
  /** What may be a mistake but does not stop the service, one log line each. */
  warnings: string[];
  /** Why the configuration is refused, one whole line each; empty when it is not. */
  problems: string[];
}

/**
 * Refuses settings that cannot work together, and warns about what may be a mistake. It throws
 * nothing of its own: the caller refuses the configuration when `problems` is not empty.
 */
export function crossCheck(checked: Config, options: CrossCheckOptions): CrossChecked {
  const { naming } = options;
  let config = checked;
  const problems: string[] = [];
  const warnings: string[] = [];
  const placeholders = _placeholdersInUse(config).map(naming);
  if (placeholders.length > 0) {
    if (options.isDevelopment) {
      warnings.push(
        `Development secrets in use (${placeholders.join(", ")}): never expose this instance`,
      );
    } else {
      problems.push(
        ...placeholders.map((name) =>
          `Invalid configuration: ${name} is the development placeholder from .env.example; set a real value`
        ),
      );
    }
  }
  const shortSecrets = config.appSecrets.filter((secret) => secret.length < MIN_APP_SECRET_LENGTH);
  for (const secret of shortSecrets) {
    // Only its length is quoted: the secret itself never reaches a log line.
    warnings.push(
      `${naming("appSecrets")} has a secret of ${secret.length} character${
        secret.length === 1 ? "" : "s"
      }, but Meta's app secrets are 32 hex characters: copy it from the App Dashboard (App settings > Basic), or no delivery will verify`,
    );
  }
  if (config.retryBaseDelayMs > config.retryMaxDelayMs) {
    const [base, max] = [naming("retryBaseDelayMs"), naming("retryMaxDelayMs")];
    problems.push(
      `Invalid configuration: ${base} is "${config.retryBaseDelayMs}", above ${max} "${config.retryMaxDelayMs}": lower ${base} or raise ${max}`,
    );
  }
  if (config.echoReplies && !hasGraphToken(config)) {
    const [echo, token, tokens] = [
      naming("echoReplies"),
      naming("whatsappToken"),
      naming("whatsappTokens"),
    ];
    if (options.isDevelopment) {
      // `.env.example` turns echo on with an empty token: a fresh clone still starts.
      config = { ...config, echoReplies: false };
      warnings.push(
        `${echo} is on but neither ${token} nor ${tokens} is set: echo replies are off`,
      );
    } else {
      problems.push(
        `Invalid configuration: ${echo} is true but neither ${token} nor ${tokens} is set`,
      );
    }
  }
  problems.push(..._flowsKeyProblems(config, naming));
  if (config.mediaCapture && !hasGraphToken(config)) {
    const [media, token, tokens] = [
      naming("mediaCapture"),
      naming("whatsappToken"),
      naming("whatsappTokens"),
    ];
    if (options.isDevelopment) {
      config = { ...config, mediaCapture: false };
      warnings.push(
        `${media} is on but neither ${token} nor ${tokens} is set: media capture is off`,
      );
    } else {
      problems.push(
        `Invalid configuration: ${media} is on but neither ${token} nor ${tokens} is set`,
      );
    }
  }
  return { config, warnings, problems };
}

/**
 * Why the Flows key cannot be used, when one is set: it must be a readable PEM RSA key of 2048
 * bits or more, decrypted by its passphrase. A passphrase without a key is refused too.
 */
function _flowsKeyProblems(config: Config, naming: (field: keyof Config) => string): string[] {
  const [key, passphrase] = [naming("flowsPrivateKey"), naming("flowsKeyPassphrase")];
  if (config.flowsPrivateKey === undefined) {
    if (config.flowsKeyPassphrase === undefined) return [];
    return [
      `Invalid configuration: ${passphrase} is set but ${key} is not: set the key, or unset the passphrase`,
    ];
  }
  try {
    readFlowsPrivateKey({
      pem: config.flowsPrivateKey,
      passphrase: config.flowsKeyPassphrase,
      passphraseName: passphrase,
    });
    return [];
  } catch (error) {
    if (error instanceof FlowsKeyError) return [`Invalid configuration: ${key} ${error.message}`];
    throw error;
  }
}

/** Whether a Flows private key is configured: the Flows endpoint is on. */
export function hasFlows(config: Config): boolean {
  return config.flowsPrivateKey !== undefined;
}

/** True unless `workerConcurrency` is 0: a process that only records and acknowledges. */
export function hasWorker(config: Config): boolean {
  return config.workerConcurrency > 0;
}

/** Whether any Cloud API access token is configured, for all numbers or for some. */
export function hasGraphToken(config: Config): boolean {
  return config.whatsappToken !== undefined || Object.keys(config.whatsappTokens).length > 0;
}

/** The settings that hold a placeholder of `.env.example`. */
function _placeholdersInUse(config: Config): (keyof Config)[] {
  const used: (keyof Config)[] = [];
  if (config.appSecrets.includes(DEVELOPMENT_PLACEHOLDERS.APP_SECRET)) used.push("appSecrets");
  if (config.verifyToken === DEVELOPMENT_PLACEHOLDERS.VERIFY_TOKEN) used.push("verifyToken");
  if (config.adminToken === DEVELOPMENT_PLACEHOLDERS.ADMIN_TOKEN) used.push("adminToken");
  return used;
}
