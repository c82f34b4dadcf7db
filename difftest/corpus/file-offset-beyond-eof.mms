f = file 1p 0x1
m = mmap 0 1p r shared $f 4p   => ok
read $m 1                      => SIGBUS
