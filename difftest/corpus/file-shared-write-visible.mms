f = file 2p 0x30
m = mmap 0 2p rw shared $f 0   => ok
write $m+1p 4 0x39
pread $f 1p-2 8
