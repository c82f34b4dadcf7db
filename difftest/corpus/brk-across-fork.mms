b = brk 0
brk $b+2p
write $b 1 0x9
fork {
  brk $b+4p
  write $b+3p 1 0x1
  read $b 1
  brk 0
}
brk 0
read $b+3p 1
brk $b
