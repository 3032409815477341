#!/usr/bin/env python3
"""Raw ADC client used once to capture real lines from uhub and eiskaltdcpp
(the lines marked capture_raw.py in uhub.txt and eiskaltdcpp.txt).

Usage: capture_raw.py HUB_PORT CID PID UDP_PORT TCP_PORT OUT_FILE, with the
CID/PID pair of a peer that is offline (here: "bob"s) while "alice" (sharing
/share-a/hello file.txt) and "carol" are logged in.

Connects to a uhub on 127.0.0.1 with a known PID/CID pair, logs every line
received (hub TCP, peer UDP, peer TCP) byte for byte, and pokes the hub and a
peer so that they answer with commands the harness traces do not show.
Loopback only; every read has a timeout.
"""
import socket, sys, time, select

HUB = ("127.0.0.1", int(sys.argv[1]))
CID, PID = sys.argv[2], sys.argv[3]
UDP_PORT, TCP_PORT = int(sys.argv[4]), int(sys.argv[5])
OUT = open(sys.argv[6], "ab")

def log(src, line):
    OUT.write(src.encode() + b"\t" + line + b"\n")
    OUT.flush()

def lines_from(sock, buf, timeout):
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([sock], [], [], max(0, end - time.monotonic()))
        if not r:
            break
        data = sock.recv(65536)
        if not data:
            break
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            got.append(line)
    return got, buf

def hub_session(inf_tail, actions, label):
    s = socket.create_connection(HUB, timeout=5)
    buf = b""
    def send(line):
        log(label + "-out", line)
        s.sendall(line + b"\n")
    send(b"HSUP ADBASE ADTIGR")
    sid = None
    got, buf = lines_from(s, buf, 2)
    for l in got:
        log(label + "-hub", l)
        if l.startswith(b"ISID "):
            sid = l[5:9]
    if sid is None:
        return
    send(b"BINF " + sid + b" " + inf_tail)
    got, buf = lines_from(s, buf, 2)
    users = {}
    for l in got:
        log(label + "-hub", l)
        if l.startswith(b"BINF ") and b" NI" in l:
            nick = l.split(b" NI", 1)[1].split(b" ", 1)[0]
            users[nick] = l[5:9]
    for act in actions:
        act(send, sid, users)
        got, buf = lines_from(s, buf, 1.5)
        for l in got:
            log(label + "-hub", l)
    s.close()

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", UDP_PORT))
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", TCP_PORT))
lst.listen(4)

def drain_udp(t):
    end = time.monotonic() + t
    while time.monotonic() < end:
        r, _, _ = select.select([udp], [], [], max(0, end - time.monotonic()))
        if not r:
            break
        data, _ = udp.recvfrom(65536)
        for l in data.split(b"\n"):
            if l:
                log("peer-udp", l)

def act_search(send, sid, users):
    send(b"BSCH " + sid + b" TOcapture1 ANhello")
    drain_udp(2)
    send(b"BSCH " + sid + b" TOcapture2 TR4BZNIEXFEUXVDB4U4PQ2R2QYWVRANWODG7OB3XY")
    drain_udp(2)
    send(b"BSCH " + sid + b" TOcapture3 ANrandom EXbin GE1000 LE400000 TY1")
    drain_udp(2)

def act_chat(send, sid, users):
    send(b"BMSG " + sid + b" capture\\sclient\\ssays\\shi")
    a = users.get(b"alice")
    if a:
        send(b"EMSG " + sid + b" " + a + b" private\\shello PM" + sid)
    send(b"BINF " + sid + b" DEchanged\\sdescription AW1")

def act_cc(send, sid, users):
    a = users.get(b"alice")
    if not a:
        return
    send(b"DCTM " + sid + b" " + a + b" ADC/1.0 " + str(TCP_PORT).encode() + b" cctoken1")
    r, _, _ = select.select([lst], [], [], 5)
    if not r:
        return
    c, _ = lst.accept()
    buf = b""
    def csend(line):
        log("cc-out", line)
        c.sendall(line + b"\n")
    got, buf = lines_from(c, buf, 1.5)
    for l in got:
        log("cc-peer", l)
    csend(b"CSUP ADBASE ADTIGR ADBZIP")
    csend(b"CINF ID" + CID.encode())
    got, buf = lines_from(c, buf, 1.5)
    for l in got:
        log("cc-peer", l)
    csend(b"CGFI file TTH/XV66LRMZNY3VJLR7G543VS7AHEAR6E3PWDNUICI")
    got, buf = lines_from(c, buf, 1.5)
    for l in got:
        log("cc-peer", l)
    csend(b"CGET file TTH/XV66LRMZNY3VJLR7G543VS7AHEAR6E3PWDNUICI 0 -1")
    # The reply is CSND then 16 bytes of file data; log only the command.
    got, buf = lines_from(c, buf, 1.5)
    for l in got[:1]:
        log("cc-peer", l)
    csend(b"CGET file TTH/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 0 -1")
    got, buf = lines_from(c, b"", 1.5)
    for l in got:
        log("cc-peer", l)
    csend(b"CGET list / 0 -1 RE1")
    got, buf = lines_from(c, b"", 1.5)
    for l in got[:1]:
        log("cc-peer", l)
    c.close()

def act_bad_proto(send, sid, users):
    a = users.get(b"alice")
    if a:
        send(b"DCTM " + sid + b" " + a + b" FOO/1.0 " + str(TCP_PORT).encode() + b" badproto1")
        send(b"DRCM " + sid + b" " + a + b" ADCS/0.10 tlstoken1")

good = b"ID" + CID.encode() + b" PD" + PID.encode()
tail = b" SL3 FS3 SS1234 SF5 HN1 HR0 HO0 VEcapture/0.1 I40.0.0.0 U4" + str(UDP_PORT).encode() + b" SUTCP4,UDP4"
hub_session(good + b" NIdave DEraw\\scapture\\sclient" + tail,
            [act_search, act_chat, act_cc, act_bad_proto], "s1")
time.sleep(1)
# Nick taken.
hub_session(good + b" NIalice" + tail, [], "s2")
time.sleep(1)
# PID that does not hash to the CID.
hub_session(b"ID" + CID.encode() + b" PDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA NIerin" + tail, [], "s3")
time.sleep(1)
# No CID at all.
hub_session(b"NIfrank" + tail, [], "s4")
