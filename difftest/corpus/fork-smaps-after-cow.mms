a = mmap 0 4p rw private|anonymous
write $a 4p 0x1
fork {
  write $a 1p 0x2
  smaps
}
smaps
