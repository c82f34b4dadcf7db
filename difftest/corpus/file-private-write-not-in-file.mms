f = file 2p 0x30
m = mmap 0 2p rw private $f 0  => ok
write $m 4 0x39
read $m 6
pread $f 0 6
