// Headless Chromium (Debian's, driven by playwright-core) through the admin console, as a
// city administrator would use it: create the first administrator from the bootstrap link,
// register a passkey (Chromium's virtual authenticator: hardware-bound, so AAL3), sign in to
// the console through Kizuna's own login, add an organization, a client and a device, create
// an enrollment token, enroll the device over EST with curl (tests/est/device.sh), find its
// certificate, revoke it through the confirmation, read the revocation in the audit log, and
// verify the chain. A screenshot of each main page goes to ARTIFACTS. Run by
// tests/console_browser.rs with ISSUER, BOOTSTRAP, EST, ROOT, DEVICE_SCRIPT, WORK and
// ARTIFACTS set; prints {"serial", "org_id"} on its last line.
import { chromium } from 'playwright-core'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import assert from 'node:assert/strict'

const issuer = new URL(process.env.ISSUER)
const url = (path) => new URL(path, issuer).href
const artifacts = process.env.ARTIFACTS
mkdirSync(artifacts, { recursive: true })
const step = (what) => console.error(`[console.mjs] ${what}`)

const profile = mkdtempSync(join(tmpdir(), 'kizuna-console-'))
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  locale: 'en-US',
  viewport: { width: 1100, height: 900 }
})
try {
  const page = browser.pages()[0] || await browser.newPage()
  page.setDefaultTimeout(20000)
  await page.addInitScript(() => {
    window.PublicKeyCredential.isConditionalMediationAvailable = async () => false
  })
  const cdp = await browser.newCDPSession(page)
  await cdp.send('WebAuthn.enable')
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'usb', hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true }
  })
  const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true })

  step('create the first city administrator from the bootstrap link')
  await page.goto(process.env.BOOTSTRAP)
  await page.fill('#username', 'mayor.office')
  await page.fill('#password', 'a long city admin passphrase')
  await page.fill('#password_confirm', 'a long city admin passphrase')
  await page.click('form[action="/admin/bootstrap"] button[type=submit]')
  await page.waitForLoadState('load')

  step('sign in with the password and register a passkey')
  await page.goto(url('/login?next=/account'))
  await page.fill('#username', 'mayor.office')
  await page.fill('#password', 'a long city admin passphrase')
  await Promise.all([page.waitForURL('**/account'), page.click('form[action="/login"] button[type=submit]')])
  await page.click('a[href="/account/passkeys/new"]')
  await page.fill('#passkey-name', 'Security key')
  await Promise.all([page.waitForURL('**/account?done=passkey_added'), page.click('#passkey-create')])

  step('the console asks for AAL3: the passkey answers the step-up')
  await page.goto(url('/admin'))
  await page.waitForURL(/\/login\/mfa/)
  await Promise.all([page.waitForURL(url('/admin')), page.click('#passkey-verify')])
  assert.match(await page.textContent('h1'), /Dashboard/)
  assert.match(await page.textContent('#counts'), /Revocations today/)
  // Keyboard: Tab reaches the skip link right after the language links; Enter moves to the
  // page title, past the navigation, and the next Tab lands in the page's content.
  let focused = ''
  for (let i = 0; i < 5 && focused !== 'skip'; i++) {
    await page.keyboard.press('Tab')
    focused = await page.evaluate(() => document.activeElement.className)
  }
  assert.equal(focused, 'skip', 'the skip link is reachable by keyboard')
  await page.keyboard.press('Enter')
  assert.equal(await page.evaluate(() => document.activeElement.id), 'page-title')
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement.closest('nav')), null, 'past the navigation')
  await shot('dashboard')

  step('add an organization')
  await page.goto(url('/admin/orgs'))
  await page.fill('#new-org-name', 'Streetlights')
  await page.fill('#new-org-name_ja', '街路灯課')
  await Promise.all([page.waitForURL(/\/admin\/orgs\/.+done=created/), page.click('#new-org button')])
  const orgId = (await page.textContent('#org dd')).trim()
  await shot('organization')
  await page.goto(url('/admin/orgs'))
  await shot('organizations')

  step('register a client; its secret is shown once')
  await page.goto(url('/admin/clients'))
  await page.fill('#new-client-client_name', 'Streetlight portal')
  await page.selectOption('#new-client-org_id', orgId)
  await page.fill('#new-client-redirect_uris', 'https://portal.example/cb')
  await page.click('#new-client button')
  await page.waitForSelector('#secret')
  assert.match(await page.textContent('#secret'), /Client secret/)
  await shot('client-created')
  await page.goto(url('/admin/clients'))
  assert.match(await page.textContent('#clients'), /Streetlight portal/)
  await shot('clients')

  step('register a device and create its enrollment token')
  await page.goto(url('/admin/devices'))
  await page.selectOption('#new-device-org_id', orgId)
  await page.fill('#new-device-id', 'lamp-42')
  await page.fill('#new-device-model', 'LED-9')
  await page.fill('#new-device-hardware_serial', 'SN-42')
  await Promise.all([page.waitForURL(/\/admin\/devices\/lamp-42/), page.click('#new-device button')])
  await page.goto(url('/admin/devices'))
  await page.selectOption('#new-token-org_id', orgId)
  await page.fill('#new-token-device_id', 'lamp-42')
  await page.click('#new-token button')
  await page.waitForSelector('#token')
  const token = (await page.textContent('#token dd')).trim()
  assert.match(token, /^kzet_/)

  step('the device enrolls over EST with curl')
  const dir = join(process.env.WORK, 'lamp-42')
  execFileSync('bash', [process.env.DEVICE_SCRIPT, 'enroll', process.env.EST, process.env.ROOT, dir, token,
    '/CN=lamp-42/serialNumber=SN-42'], { stdio: ['ignore', 'inherit', 'inherit'] })

  step('find the certificate and revoke it')
  await page.goto(url('/admin/devices?q=lamp-42'))
  await shot('devices')
  const serialLink = page.locator('#certificates tbody a').first()
  const serial = (await serialLink.textContent()).trim()
  await serialLink.click()
  await page.waitForURL(/\/admin\/certificates\//)
  assert.match(await page.textContent('#fields'), /URI:spiffe:\/\/[^/]+\/org\/[^/]+\/device\/lamp-42/)
  assert.match(await page.textContent('#status'), /valid/)
  await shot('certificate')
  await page.selectOption('#revoke-reason', 'keyCompromise')
  await Promise.all([page.waitForURL(/\/admin\/revoke\?/), page.click('#revoke button')])
  const confirm = await page.textContent('#confirm')
  assert.ok(confirm.includes(serial) && confirm.includes('1 certificate'), confirm)
  await shot('revoke-confirm')
  await Promise.all([page.waitForURL(/done=revoked/), page.click('#confirm-revoke button')])
  assert.match(await page.textContent('#status'), /revoked/)
  assert.match(await page.textContent('#status'), /keyCompromise/)

  step('the revocation is in the audit log, and the chain verifies')
  await page.goto(url('/admin/audit'))
  await page.fill('#audit-filter-action', 'cert.revoke')
  await Promise.all([page.waitForURL(/action=cert.revoke/), page.click('#audit-filter button')])
  const entries = await page.textContent('#entries')
  assert.ok(entries.includes(`cert:${serial}`), entries)
  await shot('audit')
  await page.locator('#entries tbody a').first().click()
  await page.waitForURL(/\/admin\/audit\//)
  assert.match(await page.textContent('#entry'), /keyCompromise/)
  await shot('audit-entry')
  await page.goto(url('/admin/audit'))
  await page.click('#verify button')
  await page.waitForSelector('#verify')
  assert.match(await page.textContent('#verify'), /^\s*ok: \d+/m)
  await shot('audit-verify')

  step('users and reviews')
  await page.goto(url('/admin/users?q=mayor'))
  await page.locator('#users tbody a').first().click()
  await page.waitForURL(/\/admin\/users\//)
  assert.match(await page.textContent('#account'), /city-admin/)
  await shot('user')
  await page.goto(url('/admin/reviews?days=30'))
  await shot('reviews')
  await page.goto(url('/admin/upstreams'))
  assert.ok(await page.isVisible('#new-upstream'), 'the form to add an identity provider')
  await shot('upstreams')
  console.log(JSON.stringify({ serial, org_id: orgId }))
} finally {
  await browser.close()
  rmSync(profile, { recursive: true, force: true })
}
