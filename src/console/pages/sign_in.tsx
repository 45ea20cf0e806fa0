/**
 * The sign-in page: the admin token typed into a password field and posted in the form body (it
 * never appears in a URL), then a session cookie (`session.ts`).
 *
 * @module
 */
import type { VNode } from "preact";
import { Layout } from "../layout.tsx";

/** The sign-in form, with `error` shown when the last attempt was refused. */
export function SignInPage(props: { error?: string | undefined }): VNode {
  return (
    <Layout title="Sign in">
      {props.error && <p class="notice warning" role="alert">{props.error}</p>}
      <form method="post" action="/console/sign-in" class="filters">
        <label>
          Admin token
          <input
            type="password"
            name="token"
            autocomplete="current-password"
            required
            autofocus
          />
        </label>
        <button type="submit">Sign in</button>
      </form>
      <p class="muted">
        The token is the service's <code>ADMIN_TOKEN</code>. The session lasts 12 hours.
      </p>
    </Layout>
  );
}
