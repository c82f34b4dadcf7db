a = mmap 0 1p rw private|anonymous
write $a 1 0x10
fork {
  read $a 1
}
write $a 1 0x11
fork {
  read $a 1
}
