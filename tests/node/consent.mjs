// Headless Chromium (Debian's, driven by playwright-core) through the resident consent pages
// (issue #18), as a resident would use them: open a service's authorization URL, sign in on
// Kizuna's login page, read the consent page (the purpose, an optional claim), keep the email
// address back by unticking it, and allow; the Japanese consent page is checked once from a
// second browser with locale ja-JP. After the test has redeemed the code (it writes a line to
// this script's stdin), the same browser (a new tab, same session) opens /account/services: the service with its purpose
// and what was kept back, "End it on" an earlier day, the release history with the ID token
// release, its CSV export, and the withdrawal. Both pages are checked for labelled inputs and a
// heading, and screenshots go to ARTIFACTS. Run by tests/e2e/consent_browser.rs with ISSUER,
// AUTHORIZE_URL, CALLBACK, USERNAME, PASSWORD, SERVICE, PURPOSE, PURPOSE_JA, END_DAY and
// ARTIFACTS set; prints {"code"} when the browser reaches the callback, then, once let go on,
// {"until", "csv_header", "csv_rows"} on its last line.
import { chromium } from 'playwright-core'
import { mkdirSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import assert from 'node:assert/strict'

const env = (name) => {
  const value = process.env[name]
  assert.ok(value, `${name} is set`)
  return value
}
const issuer = new URL(env('ISSUER'))
const url = (path) => new URL(path, issuer).href
const callback = env('CALLBACK')
const service = env('SERVICE')
const purpose = env('PURPOSE')
const endDay = env('END_DAY')
const artifacts = env('ARTIFACTS')
mkdirSync(artifacts, { recursive: true })
const step = (what) => console.error(`[consent.mjs] ${what}`)
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // The client's callback is on port 9 (discard), which Chromium refuses before asking.
  args: [`--explicitly-allowed-ports=${new URL(callback).port || 80}`, '--headless', '--no-sandbox',
    '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic']
})

// A browser context whose pages prefer `locale`.
async function resident (locale, acceptLanguage) {
  const context = await browser.newContext({
    locale,
    extraHTTPHeaders: { 'Accept-Language': acceptLanguage },
    viewport: { width: 1100, height: 900 },
    acceptDownloads: true
  })
  const page = await context.newPage()
  page.setDefaultTimeout(20000)
  const shot = (name, on = page) => on.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true })
  return { context, page, shot }
}

// Every input a person fills or ticks has a label, and the page has a main heading.
async function assertAccessible (page, where) {
  const inputs = await page.evaluate(() => [...document.querySelectorAll('input:not([type=hidden])')]
    .map((i) => ({ name: i.name || i.id, labels: i.labels.length })))
  assert.ok(inputs.length > 0, `${where}: there are inputs to check`)
  assert.deepEqual(inputs.filter((i) => i.labels === 0), [], `${where}: every input has a label`)
  assert.equal(await page.locator('h1').count(), 1, `${where}: one <h1>`)
  assert.ok((await page.textContent('h1')).trim().length > 0, `${where}: the <h1> says something`)
}

// Kizuna's login page, filled in by its labels.
async function signIn (page, labels) {
  await page.goto(env('AUTHORIZE_URL'))
  await page.waitForURL(/\/login\?/)
  await page.getByLabel(labels.username, { exact: true }).fill(env('USERNAME'))
  await page.getByLabel(labels.password, { exact: true }).fill(env('PASSWORD'))
  await Promise.all([
    page.waitForURL(/\/consent\?req=/),
    page.getByRole('button', { name: labels.submit, exact: true }).click()
  ])
}

try {
  const en = await resident('en-US', 'en')

  step('open the service\'s authorization URL and sign in')
  await signIn(en.page, { username: 'Username or email', password: 'Password', submit: 'Sign in' })

  step('the consent page: the purpose, and the email address as an optional claim')
  const page = en.page
  assert.match(await page.textContent('h1'), /Allow access/)
  assert.equal(await page.getAttribute('html', 'lang'), 'en')
  const shown = page.locator('#purpose')
  assert.ok(await shown.isVisible(), 'the purpose is visible')
  assert.match(await shown.textContent(), new RegExp(`Purpose:\\s*${purpose}`))
  assert.ok((await page.textContent('body')).includes(service), 'the service is named')
  const email = page.getByRole('checkbox', { name: /Your email address/ })
  assert.equal(await email.count(), 1, 'one optional checkbox for the email address')
  assert.equal(await email.getAttribute('value'), 'email')
  assert.ok(await email.isChecked(), 'optional claims start ticked')
  const emailLabel = page.locator('label', { hasText: 'Your email address' })
  assert.match(await emailLabel.textContent(), /optional: untick to keep it back/)
  assert.match(await page.textContent('#until'), /This consent lasts until \d{4}-\d{2}-\d{2}/)
  await assertAccessible(page, 'consent page')
  await en.shot('consent')

  step('the same consent page in Japanese, for a browser with locale ja-JP')
  const ja = await resident('ja-JP', 'ja-JP,ja;q=0.9')
  await signIn(ja.page, { username: 'ユーザー名またはメールアドレス', password: 'パスワード', submit: 'サインイン' })
  assert.equal(await ja.page.getAttribute('html', 'lang'), 'ja')
  assert.match(await ja.page.textContent('h1'), /情報提供の確認/)
  assert.match(await ja.page.textContent('#purpose'), new RegExp(`利用目的:\\s*${env('PURPOSE_JA')}`))
  assert.match(await ja.page.locator('label[for="claim-email"]').textContent(), /メールアドレス.*任意/s)
  assert.ok(await ja.page.getByRole('button', { name: '許可する', exact: true }).isVisible())
  await assertAccessible(ja.page, 'Japanese consent page')
  await ja.shot('consent-ja')
  await ja.context.close()

  step('keep the email address back by unticking its label, and allow')
  await emailLabel.click()
  assert.equal(await email.isChecked(), false, 'unticked by its label')
  // Nothing listens at the callback: the browser's request to it, redirected there from
  // Kizuna, carries the code (playwright's routing does not see redirected requests).
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().startsWith(callback)),
    page.waitForEvent('requestfailed', (r) => r.url().startsWith(callback)),
    page.getByRole('button', { name: 'Allow', exact: true }).click()
  ])
  const back = new URL(request.url())
  const code = back.searchParams.get('code')
  assert.ok(code, `a code in ${back.href}`)
  assert.equal(back.searchParams.get('state'), 'consent-browser')
  console.log(JSON.stringify({ code }))

  step('waiting for the test to redeem the code')
  const { done } = await stdin.next()
  assert.ok(!done, 'the test let the browser go on')

  step('the services page: the service, its purpose and what was kept back')
  // A new tab of the same browser (same session): the first one shows Chromium's error page
  // for the unreachable callback.
  await page.close()
  const account = await en.context.newPage()
  account.setDefaultTimeout(20000)
  await account.goto(url('/account/services'))
  assert.match(await account.textContent('h1'), /Services and your data/)
  const allowed = account.locator('section[aria-labelledby="services-title"] > ul > li')
    .filter({ has: account.locator('strong', { hasText: service }) })
  assert.equal(await allowed.count(), 1, 'the service is listed once')
  const entry = await allowed.textContent()
  assert.ok(entry.includes(`Purpose: ${purpose}`), entry)
  assert.ok(entry.includes('Kept back: Your email address'), entry)
  await assertAccessible(account, 'services page')

  step('end it sooner')
  const before = (await allowed.locator('.consent-until').textContent()).trim()
  assert.ok(!before.startsWith(endDay), `it ended later to begin with: ${before}`)
  await allowed.getByLabel('End it on').fill(endDay)
  await Promise.all([
    account.waitForURL(/\/account\/services\?done=shortened/),
    allowed.getByRole('button', { name: 'End sooner' }).click()
  ])
  assert.equal((await account.getByRole('status').filter({ hasText: 'Your consent now ends sooner.' }).count()), 1)
  const until = (await allowed.locator('.consent-until').textContent()).trim()
  assert.ok(until.startsWith(endDay), `the new end: ${until}`)
  await en.shot('services', account)

  step('the release history lists the ID token released to the service')
  const releases = account.locator('#releases tbody tr')
    .filter({ hasText: service })
    .filter({ hasText: 'sign-in (tokens issued)' })
  assert.equal(await releases.count(), 1, await account.locator('section[aria-labelledby="releases-title"]').textContent())
  const released = await releases.locator('td').nth(3).textContent()
  assert.ok(released.includes('preferred_username'), released)
  assert.ok(!released.split(', ').includes('email'), `the email address was kept back: ${released}`)

  step('the history downloads as CSV')
  const [download] = await Promise.all([
    account.waitForEvent('download'),
    account.getByRole('link', { name: 'CSV', exact: true }).click()
  ])
  assert.match(download.suggestedFilename(), /\.csv$/)
  const csv = readFileSync(await download.path(), 'utf8').replace(/^\uFEFF/, '')
  const lines = csv.split('\r\n').filter((l) => l.length > 0)
  const csvHeader = lines[0]
  assert.ok(csvHeader.startsWith('time,service'), csvHeader)
  const csvRows = lines.slice(1)
  assert.ok(csvRows.some((l) => l.includes(service) && l.includes(',id_token,')), csv)

  step('withdraw the consent')
  await Promise.all([
    account.waitForURL(/\/account\/services\?done=withdrawn/),
    account.getByRole('button', { name: `Withdraw consent: ${service}`, exact: true }).click()
  ])
  assert.equal(await account.getByRole('status').filter({ hasText: 'Your consent was withdrawn' }).count(), 1)
  assert.equal(await account.locator('section[aria-labelledby="services-title"] > ul > li').count(), 0,
    'no service is listed any more')
  await en.shot('services-withdrawn', account)
  await en.context.close()
  console.log(JSON.stringify({ until, csv_header: csvHeader, csv_rows: csvRows.length }))
} finally {
  await browser.close()
  process.stdin.destroy()
}
