f = file 2p 0x44
m = mmap 0 2p rw shared $f 0
read $m+1p 2
ftruncate $f 1p                => ok
read $m+1p 1                   => SIGBUS
read $m 2                      => ok
