f = file 1p 0x2
m = mmap 0 1p rw shared $f 0
write $m 10 0x3
msync $m 1p sync               => ok
msync $m 1p invalidate         => ok
pread $f 0 12
