// Headless Chromium (Debian's, driven by playwright-core) signs a resident in at a city service
// through a SAML IdP (pysaml2, tests/saml/idp.py), as a person would: the service's
// authorization URL, "Sign in with …" on Kizuna's login page, the IdP's page that posts the
// Response back by itself (its script submits the form), Kizuna's ACS, and back to the
// service with a code. What a script-free client cannot show: the browser keeps and sends the
// cookie that binds the IdP's cross-site POST to this browser. Run by tests/e2e/saml.rs with
// AUTHORIZE_URL, CALLBACK, UPSTREAM (the button's alias) and ARTIFACTS set; prints
// {"code", "cookie"} on its last line.
import { chromium } from 'playwright-core'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import assert from 'node:assert/strict'

const env = (name) => {
  const value = process.env[name]
  assert.ok(value, `${name} is set`)
  return value
}
const callback = env('CALLBACK')
const artifacts = env('ARTIFACTS')
mkdirSync(artifacts, { recursive: true })
const step = (what) => console.error(`[saml.mjs] ${what}`)

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // The client's callback is on port 9 (discard), which Chromium refuses before asking.
  args: [`--explicitly-allowed-ports=${new URL(callback).port || 80}`, '--headless', '--no-sandbox',
    '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic']
})
try {
  const context = await browser.newContext({ locale: 'en-US', extraHTTPHeaders: { 'Accept-Language': 'en' } })
  const page = await context.newPage()
  page.setDefaultTimeout(20000)
  step('open the service and choose the organization on the login page')
  await page.goto(env('AUTHORIZE_URL'))
  await page.waitForURL(/\/login\?/)
  const button = page.locator(`#upstream-${env('UPSTREAM')}`)
  assert.match(await button.textContent(), /Sign in with/)
  await page.screenshot({ path: join(artifacts, 'login.png'), fullPage: true })
  // Nothing listens at the callback: the browser's request to it, redirected there from
  // Kizuna after the IdP's form posted itself to the ACS, carries the code.
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().startsWith(callback)),
    page.waitForEvent('requestfailed', (r) => r.url().startsWith(callback)),
    button.click()
  ])
  const back = new URL(request.url())
  const code = back.searchParams.get('code')
  assert.ok(code, `a code in ${back.href}`)
  const cookie = (await context.cookies()).find((c) => c.name.endsWith('kizuna_saml'))
  assert.ok(cookie, 'the SAML binding cookie was kept')
  console.log(JSON.stringify({ code, cookie: { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite } }))
} finally {
  await browser.close()
}
