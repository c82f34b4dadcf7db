f = memfd 2p
m = mmap 0 2p rw shared $f 0   => ok
write $m 3 0x61
pread $f 0 4
fork {
  read $m 3
}
