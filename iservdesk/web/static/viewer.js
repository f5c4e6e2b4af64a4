/* The portal's own desktop viewer (the page comes from iservdesk/web/viewer.py).
 *
 * A small RFB client written for iservdesk: RFB 3.8 over the desktop's binary WebSocket,
 * nothing else is ever loaded from the desktop. It speaks what both the KasmVNC of the
 * kasmweb images and the demo image (TigerVNC's Xvnc behind websockify) serve; the
 * README's "The portal's viewer" names the sources and versions behind each rule:
 *
 * - security type None, else VNC authentication with the empty password (KasmVNC
 *   authenticates with HTTP Basic auth, which the portal adds, and sets the legacy VNC
 *   password to the empty one);
 * - ClientInit shared, 32 bpp true colour, encodings Hextile, CopyRect, Raw and the
 *   DesktopSize pseudo-encoding; incremental FramebufferUpdateRequests, one at a time;
 * - KasmVNC's own server messages are read and dropped (binary clipboard, session
 *   users, statistics), and its PointerEvent has a 16-bit button mask and two scroll
 *   fields (11 bytes instead of RFC 6143's 6);
 * - full control: pointer (buttons, wheel as buttons 4-7) and keys as X keysyms. View
 *   only: no input listener exists, so no input message can be sent.
 *
 * Everything from the desktop is untrusted: rectangles are checked against the screen,
 * sizes are bounded, and no text from the desktop (its name, clipboard, refusal reasons)
 * reaches the page.
 */
(function () {
    "use strict";

    const root = document.getElementById("viewer");
    const canvas = document.getElementById("screen");
    const statusLine = document.getElementById("status");
    const reconnectButton = document.getElementById("reconnect");
    if (!root || !canvas) {
        return;
    }
    const texts = JSON.parse(root.dataset.texts || "{}");
    // Full control only when the server said so. The URL can take control away (links and
    // tests use ?view_only=1), never grant it.
    const viewOnly = root.dataset.viewOnly !== "false"
        || new URLSearchParams(location.search).get("view_only") === "1";
    root.dataset.viewOnly = viewOnly ? "true" : "false";
    const mode = document.getElementById("mode");
    if (viewOnly && mode && mode.classList.contains("mode-full")) {
        mode.classList.replace("mode-full", "mode-view");
        mode.textContent = texts.view || "";
        mode.title = texts.view_hint || "";
    }
    const websocketPath = root.dataset.websocket || "";

    const ENCODING_RAW = 0;
    const ENCODING_COPYRECT = 1;
    const ENCODING_HEXTILE = 5;
    const PSEUDO_DESKTOP_SIZE = -223;
    const PSEUDO_LAST_RECT = -224;
    // In order of preference. Both servers encode most of a desktop in Hextile.
    const ENCODINGS = [ENCODING_HEXTILE, ENCODING_COPYRECT, ENCODING_RAW, PSEUDO_DESKTOP_SIZE];
    const MAX_SIDE = 16384;
    const MAX_MESSAGE = 64 * 1024 * 1024;  // a clipboard or text we must hold whole to skip

    function text(key, values) {
        let result = texts[key] || key;
        for (const name in values || {}) {
            result = result.replace("{" + name + "}", values[name]);
        }
        return result;
    }

    function setStatus(state, message) {
        root.dataset.state = state;
        statusLine.textContent = message;
        statusLine.classList.toggle("problem", state === "failed" || state === "closed");
        reconnectButton.hidden = state !== "failed" && state !== "closed";
    }

    /* ---- DES (FIPS 46-3), encryption only, for VNC authentication ---------------- */

    const DES = (function () {
        const IP = [58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
                    62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
                    57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
                    61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7];
        const FP = new Array(64);
        IP.forEach((from, to) => { FP[from - 1] = to + 1; });
        const E = [];
        for (let group = 0; group < 8; group++) {
            for (let i = 0; i < 6; i++) {
                E.push((4 * group + i + 31) % 32 + 1);
            }
        }
        const P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
                   2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25];
        const PC1 = [57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
                     10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
                     63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
                     14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4];
        const PC2 = [14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4,
                     26, 8, 16, 7, 27, 20, 13, 2, 41, 52, 31, 37, 47, 55, 30, 40,
                     51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32];
        const SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
        const S = [
            "e4d12fb83a6c5907 0f74e2d1a6cb9538 41e8d62bfc973a50 fc8249175b3ea06d",
            "f18e6b34972dc05a 3d47f28ec01a69b5 0e7ba4d158c6932f d8a13f42b67c05e9",
            "a09e63f51dc7b428 d709346a285ecbf1 d6498f30b12c5ae7 1ad069874fe3b52c",
            "7de3069a1285bc4f d8b56f03472c1ae9 a690cb7df13e5284 3f06a1d8945bc72e",
            "2c417ab6853fd0e9 eb2c47d150fa3986 421bad78f9c5630e b8c71e2d6f09a453",
            "c1af92680d34e75b af427c9561de0b38 9ef528c3704a1db6 432c95fabe17608d",
            "4b2ef08d3c975a61 d0b7491ae35c2f86 14bdc37eaf680592 6bd814a7950fe23c",
            "d2846fb1a93e50c7 1fd8a374c56b0e92 7b419ce206adf358 21e74a8dfc90356b",
        ].map((rows) => Array.from(rows.replace(/ /g, ""), (digit) => parseInt(digit, 16)));

        function toBits(bytes) {
            const bits = [];
            for (const byte of bytes) {
                for (let i = 7; i >= 0; i--) {
                    bits.push((byte >> i) & 1);
                }
            }
            return bits;
        }

        function permute(bits, table) {
            return table.map((position) => bits[position - 1]);
        }

        function subkeys(key) {
            const bits = permute(toBits(key), PC1);
            let c = bits.slice(0, 28);
            let d = bits.slice(28);
            return SHIFTS.map((shift) => {
                c = c.slice(shift).concat(c.slice(0, shift));
                d = d.slice(shift).concat(d.slice(0, shift));
                return permute(c.concat(d), PC2);
            });
        }

        /* One 8-byte block encrypted under the 8-byte key (parity bits ignored). */
        function encryptBlock(key, block) {
            const keys = subkeys(key);
            const bits = permute(toBits(block), IP);
            let left = bits.slice(0, 32);
            let right = bits.slice(32);
            for (let round = 0; round < 16; round++) {
                const mixed = permute(right, E).map((bit, i) => bit ^ keys[round][i]);
                const substituted = [];
                for (let box = 0; box < 8; box++) {
                    const six = mixed.slice(6 * box, 6 * box + 6);
                    const row = 2 * six[0] + six[5];
                    const column = 8 * six[1] + 4 * six[2] + 2 * six[3] + six[4];
                    const value = S[box][16 * row + column];
                    substituted.push((value >> 3) & 1, (value >> 2) & 1, (value >> 1) & 1, value & 1);
                }
                const f = permute(substituted, P);
                const next = left.map((bit, i) => bit ^ f[i]);
                left = right;
                right = next;
            }
            const out = permute(right.concat(left), FP);
            const bytes = new Uint8Array(8);
            for (let i = 0; i < 64; i++) {
                bytes[i >> 3] |= out[i] << (7 - (i & 7));
            }
            return bytes;
        }

        return {encryptBlock: encryptBlock};
    })();

    /* RFC 6143 7.2.2: the 16-byte challenge, each half DES-encrypted with the password as
       the key, whose bytes VNC reads lowest bit first. */
    function vncAuthResponse(challenge, password) {
        const key = new Uint8Array(8);
        for (let i = 0; i < Math.min(8, password.length); i++) {
            let byte = password.charCodeAt(i) & 0xff;
            let reversed = 0;
            for (let bit = 0; bit < 8; bit++) {
                reversed = (reversed << 1) | ((byte >> bit) & 1);
            }
            key[i] = reversed;
        }
        const response = new Uint8Array(16);
        response.set(DES.encryptBlock(key, challenge.subarray(0, 8)), 0);
        response.set(DES.encryptBlock(key, challenge.subarray(8, 16)), 8);
        return response;
    }

    /* ---- received bytes ------------------------------------------------------------ */

    /* The bytes received and not yet used; read by offset from the start, then consumed. */
    class Inbox {
        constructor() {
            this.data = new Uint8Array(1 << 16);
            this.start = 0;
            this.end = 0;
        }

        get length() {
            return this.end - this.start;
        }

        push(chunk) {
            if (this.end + chunk.length > this.data.length) {
                const needed = this.length + chunk.length;
                if (needed > this.data.length / 2) {
                    let size = this.data.length;
                    while (size < needed * 2) {
                        size *= 2;
                    }
                    const bigger = new Uint8Array(size);
                    bigger.set(this.data.subarray(this.start, this.end));
                    this.data = bigger;
                } else {
                    this.data.copyWithin(0, this.start, this.end);
                }
                this.end -= this.start;
                this.start = 0;
            }
            this.data.set(chunk, this.end);
            this.end += chunk.length;
        }

        has(count) {
            return this.end - this.start >= count;
        }

        u8(offset) {
            return this.data[this.start + offset];
        }

        u16(offset) {
            return (this.u8(offset) << 8) | this.u8(offset + 1);
        }

        u32(offset) {
            return this.u16(offset) * 65536 + this.u16(offset + 2);
        }

        s32(offset) {
            return this.u32(offset) | 0;
        }

        view(offset, count) {
            return this.data.subarray(this.start + offset, this.start + offset + count);
        }

        consume(count) {
            this.start += count;
            if (this.start === this.end) {
                this.start = this.end = 0;
            }
        }
    }

    class ProtocolError extends Error {}

    /* ---- the screen ---------------------------------------------------------------- */

    const context = canvas.getContext("2d", {alpha: false});
    // One pixel to 32-bit value, in the platform's byte order.
    const pixelBytes = new Uint8Array(4);
    const pixelWord = new Uint32Array(pixelBytes.buffer);

    /* The framebuffer: RGBA bytes that updates write into; drawn once per update. */
    class Screen {
        constructor(width, height) {
            this.resize(width, height);
        }

        resize(width, height) {
            if (!(width > 0 && height > 0 && width <= MAX_SIDE && height <= MAX_SIDE)) {
                throw new ProtocolError("screen size " + width + "x" + height);
            }
            const image = context.createImageData(width, height);
            if (this.image) {
                const old = this.image;
                const rows = Math.min(old.height, height);
                const bytes = Math.min(old.width, width) * 4;
                for (let y = 0; y < rows; y++) {
                    const from = y * old.width * 4;
                    image.data.set(old.data.subarray(from, from + bytes), y * width * 4);
                }
            }
            this.image = image;
            this.words = new Uint32Array(image.data.buffer);
            this.width = width;
            this.height = height;
            canvas.width = width;
            canvas.height = height;
            root.dataset.width = width;
            root.dataset.height = height;
            this.dirty = {x1: 0, y1: 0, x2: width, y2: height};
        }

        check(x, y, width, height) {
            if (x + width > this.width || y + height > this.height) {
                throw new ProtocolError("rectangle outside the screen");
            }
        }

        mark(x, y, width, height) {
            const d = this.dirty;
            if (d) {
                d.x1 = Math.min(d.x1, x);
                d.y1 = Math.min(d.y1, y);
                d.x2 = Math.max(d.x2, x + width);
                d.y2 = Math.max(d.y2, y + height);
            } else {
                this.dirty = {x1: x, y1: y, x2: x + width, y2: y + height};
            }
        }

        /* `rows` rows of `width` pixels from the inbox (our pixel format: R, G, B, pad). */
        put(x, y, width, rows, source) {
            const data = this.image.data;
            for (let row = 0; row < rows; row++) {
                let to = ((y + row) * this.width + x) * 4;
                data.set(source.subarray(row * width * 4, (row + 1) * width * 4), to);
                for (let i = 0; i < width; i++, to += 4) {
                    data[to + 3] = 255;
                }
            }
            this.mark(x, y, width, rows);
        }

        fill(x, y, width, height, value) {
            for (let row = y; row < y + height; row++) {
                const start = row * this.width + x;
                this.words.fill(value, start, start + width);
            }
        }

        copy(fromX, fromY, x, y, width, height) {
            const words = this.words;
            const down = y > fromY;
            for (let i = 0; i < height; i++) {
                const row = down ? height - 1 - i : i;
                const from = (fromY + row) * this.width + fromX;
                words.copyWithin((y + row) * this.width + x, from, from + width);
            }
            this.mark(x, y, width, height);
        }

        draw() {
            const d = this.dirty;
            if (d && d.x2 > d.x1 && d.y2 > d.y1) {
                context.putImageData(this.image, 0, 0, d.x1, d.y1, d.x2 - d.x1, d.y2 - d.y1);
            }
            this.dirty = null;
        }
    }

    function pixel(inbox, offset) {
        pixelBytes[0] = inbox.u8(offset);
        pixelBytes[1] = inbox.u8(offset + 1);
        pixelBytes[2] = inbox.u8(offset + 2);
        pixelBytes[3] = 255;
        return pixelWord[0];
    }

    /* ---- one connection ------------------------------------------------------------ */

    let current = null;
    let updates = 0;

    class Connection {
        constructor() {
            this.inbox = new Inbox();
            this.state = "version";
            this.skip = 0;          // bytes of a message we drop, still to come
            this.update = null;     // the FramebufferUpdate being read
            this.screen = null;
            this.kasm = false;      // KasmVNC's PointerEvent layout
            this.buttons = 0;
            this.x = 0;
            this.y = 0;
            this.failed = false;
            const scheme = location.protocol === "https:" ? "wss:" : "ws:";
            this.socket = new WebSocket(scheme + "//" + location.host + websocketPath, ["binary"]);
            this.socket.binaryType = "arraybuffer";
            this.socket.onmessage = (event) => this.receive(new Uint8Array(event.data));
            this.socket.onclose = () => this.closed();
            setStatus("connecting", text("connecting"));
        }

        send(bytes) {
            if (this.socket.readyState === WebSocket.OPEN) {
                this.socket.send(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
            }
        }

        receive(chunk) {
            if (this.failed) {
                return;
            }
            this.inbox.push(chunk);
            try {
                while (this.step()) {
                    // each step consumes a piece; stop when more bytes must arrive
                }
            } catch (error) {
                this.fail(error instanceof ProtocolError ? error.message : String(error));
            }
        }

        fail(reason) {
            this.failed = true;
            setStatus("failed", text("failed", {reason: reason}));
            this.socket.close();
        }

        closed() {
            if (this.failed) {
                return;
            }
            this.failed = true;
            if (this.state === "version") {
                setStatus("closed", text("unreachable"));
            } else {
                setStatus("closed", text("closed"));
            }
        }

        step() {
            if (this.skip > 0) {
                const count = Math.min(this.skip, this.inbox.length);
                this.inbox.consume(count);
                this.skip -= count;
                return count > 0;
            }
            switch (this.state) {
            case "version": return this.readVersion();
            case "security-types": return this.readSecurityTypes();
            case "vnc-challenge": return this.readChallenge();
            case "security-result": return this.readSecurityResult();
            case "server-init": return this.readServerInit();
            case "normal": return this.update ? this.readUpdate() : this.readMessage();
            default: return false;
            }
        }

        readVersion() {
            if (!this.inbox.has(12)) {
                return false;
            }
            const version = String.fromCharCode.apply(null, this.inbox.view(0, 12));
            const match = /^RFB 003\.(\d{3})\n$/.exec(version);
            if (!match || Number(match[1]) < 8) {
                throw new ProtocolError("RFB version " + JSON.stringify(version.trim()));
            }
            this.inbox.consume(12);
            this.send(Array.from("RFB 003.008\n", (c) => c.charCodeAt(0)));
            this.state = "security-types";
            return true;
        }

        /* A reason string (U32 length, text) after a refusal; the connection ends. The
           reason is the desktop's text, so it goes to the console, not into the page. */
        readReason(offset, what) {
            if (!this.inbox.has(offset + 4)) {
                return false;
            }
            const length = Math.min(this.inbox.u32(offset), 1024);
            if (!this.inbox.has(offset + 4 + length)) {
                return false;
            }
            console.info("the desktop says:", new TextDecoder().decode(this.inbox.view(offset + 4, length)));
            throw new ProtocolError(what);
        }

        readSecurityTypes() {
            if (!this.inbox.has(1)) {
                return false;
            }
            const count = this.inbox.u8(0);
            if (count === 0) {
                return this.readReason(1, "the desktop refused the connection");
            }
            if (!this.inbox.has(1 + count)) {
                return false;
            }
            const offered = Array.from(this.inbox.view(1, count));
            this.inbox.consume(1 + count);
            // None where offered (the demo image); else VNC authentication, which KasmVNC
            // offers beside VeNCrypt, answered with its empty legacy password.
            const chosen = offered.includes(1) ? 1 : offered.includes(2) ? 2 : 0;
            if (!chosen) {
                throw new ProtocolError("no usable security type (offered: " + offered.join(", ") + ")");
            }
            root.dataset.security = chosen;
            // Only KasmVNC asks a viewer without password for VNC authentication; it is
            // also the server whose PointerEvent is 11 bytes long.
            this.kasm = chosen === 2;
            root.dataset.dialect = this.kasm ? "kasmvnc" : "rfb";
            this.send([chosen]);
            this.state = chosen === 2 ? "vnc-challenge" : "security-result";
            return true;
        }

        readChallenge() {
            if (!this.inbox.has(16)) {
                return false;
            }
            const challenge = this.inbox.view(0, 16).slice();
            this.inbox.consume(16);
            this.send(vncAuthResponse(challenge, ""));
            this.state = "security-result";
            return true;
        }

        readSecurityResult() {
            if (!this.inbox.has(4)) {
                return false;
            }
            if (this.inbox.u32(0) !== 0) {
                return this.readReason(4, "the desktop refused the authentication");
            }
            this.inbox.consume(4);
            this.send([1]);  // ClientInit: shared, so nobody else is disconnected
            this.state = "server-init";
            return true;
        }

        readServerInit() {
            if (!this.inbox.has(24)) {
                return false;
            }
            const nameLength = this.inbox.u32(20);
            if (nameLength > MAX_MESSAGE) {
                throw new ProtocolError("desktop name too long");
            }
            if (!this.inbox.has(24 + nameLength)) {
                return false;
            }
            const width = this.inbox.u16(0);
            const height = this.inbox.u16(2);
            // The desktop's name is its user's to choose: it is not shown.
            this.inbox.consume(24 + nameLength);
            this.screen = new Screen(width, height);
            // SetPixelFormat: 32 bpp, depth 24, little endian, true colour, 8 bits each,
            // red in the lowest byte: R, G, B, pad in memory, as ImageData wants it.
            this.send([0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0]);
            const encodings = new Uint8Array(4 + 4 * ENCODINGS.length);
            const view = new DataView(encodings.buffer);
            view.setUint8(0, 2);
            view.setUint16(2, ENCODINGS.length);
            ENCODINGS.forEach((encoding, i) => view.setInt32(4 + 4 * i, encoding));
            this.send(encodings);
            this.requestUpdate(false);
            this.state = "normal";
            setStatus("connected", text("connected"));
            if (!viewOnly) {
                canvas.focus();
            }
            return true;
        }

        requestUpdate(incremental) {
            const s = this.screen;
            this.send([3, incremental ? 1 : 0, 0, 0, 0, 0,
                       s.width >> 8, s.width & 255, s.height >> 8, s.height & 255]);
        }

        /* Server messages other than updates: RFC 6143 7.6, and KasmVNC's (msgTypes.h). */
        readMessage() {
            const inbox = this.inbox;
            if (!inbox.has(1)) {
                return false;
            }
            const type = inbox.u8(0);
            switch (type) {
            case 0:  // FramebufferUpdate
                if (!inbox.has(4)) {
                    return false;
                }
                this.update = {left: inbox.u16(2), rect: null};
                inbox.consume(4);
                return true;
            case 1:  // SetColourMapEntries (not used in true colour)
                if (!inbox.has(6)) {
                    return false;
                }
                return this.drop(6 + 6 * inbox.u16(4));
            case 2:    // Bell
            case 150:  // EndOfContinuousUpdates
            case 179:  // KasmVNC: RequestFrameStats
            case 187:  // KasmVNC: ForceGameMode
                return this.drop(1);
            case 3:    // ServerCutText: clipboards are not shared with viewers
            case 178:  // KasmVNC: Stats
            case 186:  // KasmVNC: ServerDisconnect
            case 190:  // KasmVNC: NetworkStats
            case 191:  // KasmVNC: SystemStats
                if (!inbox.has(8)) {
                    return false;
                }
                return this.drop(8 + inbox.u32(4));
            case 180:  // KasmVNC: BinaryClipboard
                return this.dropBinaryClipboard();
            case 189:  // KasmVNC: LatencyMeasurement
                return this.drop(8);
            case 248:  // ServerFence
                if (!inbox.has(9)) {
                    return false;
                }
                return this.drop(9 + inbox.u8(8));
            case 253:  // KasmVNC: UserAddedToSession
            case 254:  // KasmVNC: UserRemovedFromSession
                if (!inbox.has(5)) {
                    return false;
                }
                return this.drop(5 + inbox.u32(1));
            default:
                throw new ProtocolError("unknown message type " + type);
            }
        }

        drop(count) {
            if (count > MAX_MESSAGE) {
                throw new ProtocolError("message too long");
            }
            this.skip = count;
            return true;
        }

        /* U8 count, then per entry U32 id, U8 length + MIME type, U32 length + data. */
        dropBinaryClipboard() {
            const inbox = this.inbox;
            if (!inbox.has(2)) {
                return false;
            }
            let offset = 2;
            for (let entry = inbox.u8(1); entry > 0; entry--) {
                if (!inbox.has(offset + 5)) {
                    return false;
                }
                const mime = inbox.u8(offset + 4);
                if (!inbox.has(offset + 5 + mime + 4)) {
                    return false;
                }
                offset += 5 + mime + 4 + inbox.u32(offset + 5 + mime);
                if (offset > MAX_MESSAGE) {
                    throw new ProtocolError("clipboard too large");
                }
            }
            return this.drop(offset);
        }

        readUpdate() {
            const update = this.update;
            const inbox = this.inbox;
            if (!update.rect) {
                if (update.left === 0) {
                    this.update = null;
                    this.screen.draw();
                    updates++;
                    root.dataset.updates = updates;
                    this.requestUpdate(true);
                    return true;
                }
                if (!inbox.has(12)) {
                    return false;
                }
                const rect = {x: inbox.u16(0), y: inbox.u16(2), width: inbox.u16(4), height: inbox.u16(6),
                              encoding: inbox.s32(8), done: 0, bg: null, fg: null};
                inbox.consume(12);
                update.left--;
                switch (rect.encoding) {
                case PSEUDO_LAST_RECT:
                    update.left = 0;
                    return true;
                case PSEUDO_DESKTOP_SIZE:
                    this.screen.resize(rect.width, rect.height);
                    return true;
                case ENCODING_RAW:
                case ENCODING_COPYRECT:
                case ENCODING_HEXTILE:
                    this.screen.check(rect.x, rect.y, rect.width, rect.height);
                    if (rect.width > 0 && rect.height > 0) {
                        update.rect = rect;
                    } else if (rect.encoding === ENCODING_COPYRECT) {
                        return this.drop(4);
                    }
                    return true;
                default:
                    throw new ProtocolError("encoding " + rect.encoding + " was not asked for");
                }
            }
            const rect = update.rect;
            switch (rect.encoding) {
            case ENCODING_RAW: return this.readRaw(rect);
            case ENCODING_COPYRECT: return this.readCopyRect(rect);
            default: return this.readHextile(rect);
            }
        }

        /* Raw: rows of pixels; drawn row by row as they arrive. */
        readRaw(rect) {
            const rowBytes = rect.width * 4;
            const rows = Math.min(Math.floor(this.inbox.length / rowBytes), rect.height - rect.done);
            if (rows === 0) {
                return false;
            }
            const pixels = this.inbox.view(0, rows * rowBytes);
            this.screen.put(rect.x, rect.y + rect.done, rect.width, rows, pixels);
            this.inbox.consume(rows * rowBytes);
            rect.done += rows;
            if (rect.done === rect.height) {
                this.update.rect = null;
            }
            return true;
        }

        readCopyRect(rect) {
            if (!this.inbox.has(4)) {
                return false;
            }
            const fromX = this.inbox.u16(0);
            const fromY = this.inbox.u16(2);
            this.inbox.consume(4);
            this.screen.check(fromX, fromY, rect.width, rect.height);
            this.screen.copy(fromX, fromY, rect.x, rect.y, rect.width, rect.height);
            this.update.rect = null;
            return true;
        }

        /* Hextile (RFC 6143 7.7.4): 16x16 tiles, each raw or a background with
           subrectangles; background and foreground carry over from tile to tile. A tile is
           only used once all its bytes are here. */
        readHextile(rect) {
            const inbox = this.inbox;
            const screen = this.screen;
            const columns = Math.ceil(rect.width / 16);
            const tiles = columns * Math.ceil(rect.height / 16);
            let progress = false;
            while (rect.done < tiles) {
                if (!inbox.has(1)) {
                    return progress;
                }
                const tx = rect.x + (rect.done % columns) * 16;
                const ty = rect.y + Math.floor(rect.done / columns) * 16;
                const tw = Math.min(16, rect.x + rect.width - tx);
                const th = Math.min(16, rect.y + rect.height - ty);
                const mask = inbox.u8(0);
                if (mask & 1) {
                    if (!inbox.has(1 + tw * th * 4)) {
                        return progress;
                    }
                    screen.put(tx, ty, tw, th, inbox.view(1, tw * th * 4));
                    inbox.consume(1 + tw * th * 4);
                    rect.bg = rect.fg = null;
                } else {
                    let offset = 1;
                    let bg = rect.bg;
                    let fg = rect.fg;
                    if (mask & 2) {
                        if (!inbox.has(offset + 4)) {
                            return progress;
                        }
                        bg = pixel(inbox, offset);
                        offset += 4;
                    }
                    if (mask & 4) {
                        if (!inbox.has(offset + 4)) {
                            return progress;
                        }
                        fg = pixel(inbox, offset);
                        offset += 4;
                    }
                    let count = 0;
                    const coloured = (mask & 16) !== 0;
                    if (mask & 8) {
                        if (!inbox.has(offset + 1)) {
                            return progress;
                        }
                        count = inbox.u8(offset);
                        offset += 1;
                        if (!inbox.has(offset + count * (coloured ? 6 : 2))) {
                            return progress;
                        }
                    }
                    if (bg === null || (count > 0 && !coloured && fg === null)) {
                        throw new ProtocolError("Hextile tile without its colours");
                    }
                    screen.fill(tx, ty, tw, th, bg);
                    for (let i = 0; i < count; i++) {
                        let colour = fg;
                        if (coloured) {
                            colour = pixel(inbox, offset);
                            offset += 4;
                        }
                        const position = inbox.u8(offset);
                        const size = inbox.u8(offset + 1);
                        offset += 2;
                        const sx = position >> 4;
                        const sy = position & 15;
                        const sw = Math.min((size >> 4) + 1, tw - sx);
                        const sh = Math.min((size & 15) + 1, th - sy);
                        if (sw > 0 && sh > 0) {
                            screen.fill(tx + sx, ty + sy, sw, sh, colour);
                        }
                    }
                    screen.mark(tx, ty, tw, th);
                    inbox.consume(offset);
                    rect.bg = bg;
                    rect.fg = coloured ? null : fg;
                }
                rect.done++;
                progress = true;
            }
            this.update.rect = null;
            return true;
        }

        /* ---- input (full control only) ---- */

        keyEvent(down, keysym) {
            this.send([4, down ? 1 : 0, 0, 0,
                       (keysym >>> 24) & 255, (keysym >> 16) & 255, (keysym >> 8) & 255, keysym & 255]);
        }

        pointerEvent(buttons, x, y) {
            this.buttons = buttons;
            this.x = x;
            this.y = y;
            if (this.kasm) {
                // KasmVNC (common/rfb/SMsgReader.cxx): U16 mask, x, y, S16 scroll x, y.
                this.send([5, buttons >> 8, buttons & 255, x >> 8, x & 255, y >> 8, y & 255, 0, 0, 0, 0]);
            } else {
                this.send([5, buttons & 255, x >> 8, x & 255, y >> 8, y & 255]);
            }
        }

        get ready() {
            return this.state === "normal" && !this.failed && this.socket.readyState === WebSocket.OPEN;
        }
    }

    /* ---- keyboard: KeyboardEvent.key to X keysyms ----------------------------------- */

    const KEYSYMS = {
        Backspace: 0xff08, Tab: 0xff09, Enter: 0xff0d, Escape: 0xff1b, Delete: 0xffff,
        Home: 0xff50, ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
        PageUp: 0xff55, PageDown: 0xff56, End: 0xff57, Insert: 0xff63, ContextMenu: 0xff67,
        Pause: 0xff13, ScrollLock: 0xff14, PrintScreen: 0xff61, NumLock: 0xff7f,
        CapsLock: 0xffe5, AltGraph: 0xfe03,
    };
    for (let i = 1; i <= 12; i++) {
        KEYSYMS["F" + i] = 0xffbd + i;
    }
    const MODIFIERS = {
        ShiftLeft: 0xffe1, ShiftRight: 0xffe2, ControlLeft: 0xffe3, ControlRight: 0xffe4,
        AltLeft: 0xffe9, AltRight: 0xffea, MetaLeft: 0xffeb, MetaRight: 0xffec,
    };
    const MODIFIER_KEYS = {Shift: 0xffe1, Control: 0xffe3, Alt: 0xffe9, Meta: 0xffeb, OS: 0xffeb};

    function keysymOf(event) {
        const key = event.key;
        if (key in KEYSYMS) {
            return KEYSYMS[key];
        }
        if (key in MODIFIER_KEYS) {
            return MODIFIERS[event.code] || MODIFIER_KEYS[key];
        }
        const characters = Array.from(key || "");
        if (characters.length !== 1) {
            return null;  // Dead, Process, Unidentified, media keys ...
        }
        const code = characters[0].codePointAt(0);
        if ((code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff)) {
            return code;  // Latin-1 keysyms are the code points
        }
        return code > 0xff ? 0x01000000 + code : null;
    }

    /* ---- pointer: page coordinates to desktop pixels through the letterbox fit ------ */

    function position(event, screen) {
        const box = canvas.getBoundingClientRect();
        const scale = Math.min(box.width / screen.width, box.height / screen.height) || 1;
        const left = box.left + (box.width - screen.width * scale) / 2;
        const top = box.top + (box.height - screen.height * scale) / 2;
        const x = Math.floor((event.clientX - left) / scale);
        const y = Math.floor((event.clientY - top) / scale);
        return [Math.max(0, Math.min(screen.width - 1, x)), Math.max(0, Math.min(screen.height - 1, y))];
    }

    function buttonMask(buttons) {
        // Browser: 1 left, 2 right, 4 middle. RFB: bit 0 left, 1 middle, 2 right.
        return (buttons & 1) | ((buttons & 4) >> 1) | ((buttons & 2) << 1);
    }

    function listenForInput() {
        canvas.tabIndex = 0;
        const pressed = new Map();  // KeyboardEvent.code -> keysym sent down

        function pointer(event) {
            if (!current || !current.ready) {
                return;
            }
            const [x, y] = position(event, current.screen);
            const buttons = buttonMask(event.buttons);
            const moved = x !== current.x || y !== current.y;
            if (event.type === "pointermove" && buttons === current.buttons && !moved) {
                return;
            }
            current.pointerEvent(buttons, x, y);
        }

        canvas.addEventListener("pointerdown", (event) => {
            canvas.focus();
            canvas.setPointerCapture(event.pointerId);
            event.preventDefault();
            pointer(event);
        });
        canvas.addEventListener("pointerup", pointer);
        canvas.addEventListener("pointermove", pointer);
        canvas.addEventListener("contextmenu", (event) => event.preventDefault());

        let wheelX = 0;
        let wheelY = 0;
        canvas.addEventListener("wheel", (event) => {
            event.preventDefault();
            if (!current || !current.ready) {
                return;
            }
            // One wheel step per 50 pixels (a notch is about 100), per line, or per page.
            const unit = event.deltaMode === 0 ? 50 : 1;
            wheelX += event.deltaX / unit;
            wheelY += event.deltaY / unit;
            const [x, y] = position(event, current.screen);
            const buttons = buttonMask(event.buttons);
            const press = (bit) => {
                current.pointerEvent(buttons | bit, x, y);
                current.pointerEvent(buttons, x, y);
            };
            for (; wheelY <= -1; wheelY++) press(8);    // button 4: up
            for (; wheelY >= 1; wheelY--) press(16);    // button 5: down
            for (; wheelX <= -1; wheelX++) press(32);   // button 6: left
            for (; wheelX >= 1; wheelX--) press(64);    // button 7: right
        }, {passive: false});

        canvas.addEventListener("keydown", (event) => {
            const keysym = keysymOf(event);
            if (keysym === null || event.isComposing || !current || !current.ready) {
                return;
            }
            event.preventDefault();
            pressed.set(event.code || event.key, keysym);
            current.keyEvent(true, keysym);
        });
        canvas.addEventListener("keyup", (event) => {
            const id = event.code || event.key;
            const keysym = pressed.has(id) ? pressed.get(id) : keysymOf(event);
            pressed.delete(id);
            if (keysym === null || !current || !current.ready) {
                return;
            }
            event.preventDefault();
            current.keyEvent(false, keysym);
        });
        // Keys held while the focus leaves would stay down on the desktop.
        canvas.addEventListener("blur", () => {
            for (const keysym of pressed.values()) {
                if (current && current.ready) {
                    current.keyEvent(false, keysym);
                }
            }
            pressed.clear();
        });
    }

    function connect() {
        if (!websocketPath.startsWith("/desktop/")) {
            setStatus("failed", text("failed", {reason: "no desktop"}));
            return;
        }
        current = new Connection();
    }

    reconnectButton.addEventListener("click", () => {
        if (current) {
            current.failed = true;
            current.socket.close();
        }
        connect();
    });
    if (!viewOnly) {
        listenForInput();
    }
    connect();
})();
